"""The domain's password policy: applied by the DC's entrypoint from ES4PS_PASSWORD_POLICY, only where it differs.

That the directory enforces it (a password shorter than minLength is refused) is in test_worker_tasks.
"""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import ldb
import pytest
from es4ps_samba.dc.password_policy import ATTRIBUTES, NEVER, TICKS_PER_DAY, TICKS_PER_MINUTE
from es4ps_testkit.domains import default_password_policy
from es4ps_testkit.plugins.services import started
from es4ps_testkit.samba import SambaDC

pytestmark = pytest.mark.services

APPLIED = "password policy applied"


def domain_settings(dc: SambaDC) -> dict[str, int]:
    samdb = dc.samdb()
    found = samdb.search(base=samdb.domain_dn(), scope=ldb.SCOPE_BASE, attrs=[*ATTRIBUTES, "uSNChanged"])[0]
    return {str(name): int(found[name][0]) for name in found if name != "dn"}


def test_the_session_dc_runs_the_default_policy(samba_dc):
    settings = domain_settings(samba_dc)
    assert settings["minPwdLength"] == 14
    assert settings["pwdProperties"] & 1 == 0  # no composition rule
    assert settings["maxPwdAge"] == NEVER  # no periodic expiry (Samba's own default expires after 42 days)
    assert settings["minPwdAge"] == -1 * TICKS_PER_DAY
    assert settings["pwdHistoryLength"] == 24
    assert settings["lockoutThreshold"] == 10
    assert settings["lockoutDuration"] == settings["lockOutObservationWindow"] == -10 * TICKS_PER_MINUTE


def test_the_entrypoint_applies_the_policy_once_and_again_only_when_it_changes(tmp_path, test_ca):
    strict = default_password_policy(min_length=10, complexity=True, history_length=5, max_age_days=60, min_age_days=2,
                            lockout_threshold=3, lockout_duration_minutes=15)  # fmt: skip
    dc = started(SambaDC(tmp_path / "dc", test_ca, hostname="dcpol", password_policy=strict))
    try:
        settings = domain_settings(dc)
        assert (settings["minPwdLength"], settings["pwdProperties"] & 1, settings["pwdHistoryLength"]) == (10, 1, 5)
        assert (settings["maxPwdAge"], settings["minPwdAge"]) == (-60 * TICKS_PER_DAY, -2 * TICKS_PER_DAY)
        assert (settings["lockoutThreshold"], settings["lockoutDuration"]) == (3, -15 * TICKS_PER_MINUTE)
        assert dc.log.read_text().count(APPLIED) == 1

        # A restart with the same policy writes nothing: the domain object is not changed again.
        dc.stop()
        log_length = len(dc.log.read_text())
        started(dc)
        assert APPLIED not in dc.log.read_text()[log_length:]
        assert domain_settings(dc)["uSNChanged"] == settings["uSNChanged"]

        # A changed policy: only what differs is set.
        dc.stop()
        dc.password_policy = strict.replace(min_length=12, complexity=False)
        log_length = len(dc.log.read_text())
        started(dc)
        applied = [line for line in dc.log.read_text()[log_length:].splitlines() if APPLIED in line]
        assert applied == [f"es4ps-samba-dc: {APPLIED}: --min-pwd-length=12 --complexity=off"]
        settings = domain_settings(dc)
        assert (settings["minPwdLength"], settings["pwdProperties"] & 1, settings["pwdHistoryLength"]) == (12, 0, 5)
    finally:
        dc.close()
