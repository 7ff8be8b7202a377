"""The domain's password policy (spec.directory.passwordPolicy) as the domain object's attributes.

The first DC's entrypoint converges them on every start, before samba serves
(`domain.converge_password_policy`): it reads the attributes, and runs
`samba-tool domain passwordsettings set` with only the options whose values
differ, so a start with an unchanged policy writes nothing. The domain object
replicates, so one DC writing it is enough; the operator gives the policy to
dc0 only, which keeps a policy change from restarting every DC at once.

Active Directory keeps ages and durations as negative counts of 100 ns
("ticks"); a maximum age of "never" is the most negative 64-bit number.
"""

from __future__ import annotations

from collections.abc import Mapping

from es4ps_contract.passwords import PasswordPolicy

# The domain object's attributes samba-tool writes.
ATTRIBUTES = (
    "minPwdLength",
    "pwdProperties",
    "pwdHistoryLength",
    "minPwdAge",
    "maxPwdAge",
    "lockoutThreshold",
    "lockoutDuration",
    "lockOutObservationWindow",
)
NEVER = -0x8000000000000000
TICKS_PER_MINUTE = 60 * 10_000_000
TICKS_PER_DAY = 24 * 60 * TICKS_PER_MINUTE
# pwdProperties' bit for the complexity rule (DOMAIN_PASSWORD_COMPLEX).
PASSWORD_COMPLEX = 0x1


def _days(days: int) -> int:
    return -days * TICKS_PER_DAY


def _minutes(minutes: int) -> int:
    return -minutes * TICKS_PER_MINUTE


def samba_tool_options(policy: PasswordPolicy, current: Mapping[str, str]) -> list[str]:
    """The `samba-tool domain passwordsettings set` options that bring `current` (the domain object's attributes,
    as text) to `policy`; empty when nothing differs."""
    wanted = [
        ("minPwdLength", policy.min_length, f"--min-pwd-length={policy.min_length}"),
        ("pwdHistoryLength", policy.history_length, f"--history-length={policy.history_length}"),
        ("minPwdAge", _days(policy.min_age_days), f"--min-pwd-age={policy.min_age_days}"),
        (
            "maxPwdAge",
            _days(policy.max_age_days) if policy.max_age_days else NEVER,
            f"--max-pwd-age={policy.max_age_days}",
        ),
        ("lockoutThreshold", policy.lockout_threshold, f"--account-lockout-threshold={policy.lockout_threshold}"),
        (
            "lockoutDuration",
            _minutes(policy.lockout_duration_minutes),
            f"--account-lockout-duration={policy.lockout_duration_minutes}",
        ),
        # Wrong passwords are counted over as long as an account stays locked (AD wants it no longer).
        (
            "lockOutObservationWindow",
            _minutes(policy.lockout_duration_minutes),
            f"--reset-account-lockout-after={policy.lockout_duration_minutes}",
        ),
    ]
    options = [option for attribute, value, option in wanted if _integer(current, attribute) != value]
    if bool(_integer(current, "pwdProperties") & PASSWORD_COMPLEX) != policy.complexity:
        options.append(f"--complexity={'on' if policy.complexity else 'off'}")
    return options


def _integer(current: Mapping[str, str], attribute: str) -> int:
    try:
        return int(current.get(attribute, ""))
    except ValueError:
        return 0  # an attribute the domain object lacks counts as 0, as Active Directory reads it
