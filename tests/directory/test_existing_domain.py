"""Joining a domain the operator did not make: ES4PS-Containers' DC, provisioned and filled as it does it.

The legacy DC is `samba-tool domain provision` with provision_domain.sh's
options and accounts made with its worker's SamDB calls (es4ps_testkit.legacy).
Our DC joins it with the entrypoint the operator runs (`ES4PS_DC_ROLE=join`,
the legacy Administrator's password, `ES4PS_DOMAIN_SETTINGS=when-only-ours`); the
operator's Jobs' steps check the join before (`join-check`) and demote the old
DC after (`leave`, `remove`). Throughout, new registrations go through the
worker beside our DC (the real `es4ps-worker`, signed tasks through a broker)
and their accounts sign in on both DCs, then on ours alone.
"""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import ldb
import pytest
from es4ps_contract.directory import MANAGED_OU, WORKER_ACCOUNT
from es4ps_contract.events import Outcome
from es4ps_contract.tasks import EnableUser
from es4ps_localcluster.paths import VENV_BIN
from es4ps_localcluster.processes import wait_until
from es4ps_samba.dc.config import MARKER_NAME
from es4ps_samba.dc.lifecycle import FSMO_ROLES, roles_held_by
from es4ps_testkit.domains import default_password_policy
from es4ps_testkit.legacy import LegacyDC, LegacyPerson, move_legacy_accounts
from es4ps_testkit.legacy import migration_step as step
from es4ps_testkit.plugins.services import started, started_legacy_dc
from es4ps_testkit.samba import SambaDC, claim_loopback_address, password_authenticates
from es4ps_testkit.tasks import PASSWORD, TaskClient, binding, create_task, run
from es4ps_testkit.worker import DirectoryWorker

pytestmark = pytest.mark.services

# The names our DCs take in a joined domain (es4ps_operator.naming.dc_hostname: dc<i>-<the domain's uid>).
DC_NAME_TEMPLATE = "dc{index}-9a7e"
PEOPLE = [
    LegacyPerson("ana.lima", "ana.lima@college.example", "Ana", "Lima", "Old-Pass-ana-1"),
    LegacyPerson("bruno", "bruno@college.example", "Bruno", "Sá", "Old-Pass-bruno-2"),
    LegacyPerson("carla", "carla@college.example", "Carla", "Reis", "Old-Pass-carla-3", verified=False),
]


@pytest.fixture(scope="module")
def legacy(tmp_path_factory) -> LegacyDC:
    dc = started_legacy_dc(tmp_path_factory.mktemp("legacy"), PEOPLE)
    yield dc
    dc.close()


def join_check(legacy: LegacyDC, tmp_path: Path, **changes: str) -> tuple[int, dict]:
    """`es4ps-samba-dc join-check` as the operator's Job runs it; (exit code, the result it wrote)."""
    password_file = tmp_path / "join-password"
    password_file.write_text(changes.pop("password", legacy.admin_password) + "\n")
    termination_log = tmp_path / "termination-log"
    env = {
        "PATH": os.environ["PATH"],
        "ES4PS_REALM": legacy.realm,
        "ES4PS_NETBIOS_NAME": legacy.netbios_name,
        "ES4PS_ADMIN_PASSWORD_FILE": str(password_file),
        "ES4PS_JOIN_SERVER": legacy.address,
        "ES4PS_DC_NAME_TEMPLATE": DC_NAME_TEMPLATE,
        "ES4PS_TERMINATION_LOG": str(termination_log),
        "ES4PS_CHECK_TIMEOUT_SECONDS": "5",
        **changes,
    }
    result = subprocess.run(
        [str(VENV_BIN / "es4ps-samba-dc"), "join-check"], env=env, capture_output=True, text=True, timeout=120
    )
    assert legacy.admin_password not in result.stdout + result.stderr
    written = json.loads(termination_log.read_text()) if termination_log.exists() else {}
    assert written == json.loads(result.stdout.strip().splitlines()[-1]), result.stdout
    return result.returncode, written


@pytest.fixture
def silent_address():
    """A loopback address of this session where nothing listens."""
    address, lock = claim_loopback_address()
    yield address
    os.close(lock)


def test_the_join_check_accepts_the_existing_domain(legacy, tmp_path):
    code, result = join_check(legacy, tmp_path)
    assert code == 0, result
    assert result["reason"] == "Joinable"
    assert "ES4ALLDC" in result["message"] and legacy.realm in result["message"]


@pytest.mark.parametrize(
    ("change", "reason", "said"),
    [
        ({"password": "Not-the-password-1"}, "JoinCredentialsRefused", "refused the password of DOM\\Administrator"),
        ({"ES4PS_REALM": "OTHER.LEGACY.TEST"}, "JoinRealmMismatch", "serves DOM.LEGACY.TEST, not OTHER.LEGACY.TEST"),
        ({"ES4PS_NETBIOS_NAME": "COLLEGE"}, "JoinNetBIOSNameMismatch", "the domain's NetBIOS name is DOM"),
        # The legacy DC's name in the scheme of ours (es4alldc = es<index>alldc with index 4).
        ({"ES4PS_DC_NAME_TEMPLATE": "es{index}alldc"}, "JoinNameTaken", "already has a DC named ES4ALLDC"),
        ({"ES4PS_WORKER_ACCOUNT": "bruno"}, "JoinWorkerAccountTaken", "already has an account named bruno"),
    ],
)
def test_a_join_that_cannot_go_ahead_is_refused_with_its_reason_and_writes_nothing(
    legacy, tmp_path, change, reason, said
):
    before = legacy.highest_usn()
    code, result = join_check(legacy, tmp_path, **change)
    assert code == 1, result
    assert result["reason"] == reason, result
    assert said in result["message"], result
    assert legacy.highest_usn() == before, "the check wrote to the existing directory"


def test_a_server_that_does_not_answer_is_refused_with_its_reason(legacy, tmp_path, silent_address):
    code, result = join_check(legacy, tmp_path, ES4PS_JOIN_SERVER=silent_address)
    assert code == 1
    assert result["reason"] == "JoinServerUnreachable", result
    assert f"{silent_address} does not answer on the LDAP port (389)" in result["message"], result


def _objects(legacy: LegacyDC) -> dict[str, dict[str, tuple[bytes, ...]]]:
    """Every object of the legacy DC's domain, configuration and DNS partitions, with its attributes."""
    samdb = legacy.samdb()
    partitions = (legacy.base_dn, str(samdb.get_config_basedn()), f"DC=DomainDnsZones,{legacy.base_dn}")
    return {
        str(message.dn): {name: tuple(map(bytes, message[name])) for name in message if name != "dn"}
        for partition in partitions
        for message in samdb.search(partition, scope=ldb.SCOPE_SUBTREE)
    }


def _changed_attributes(before, after) -> dict[str, list[str]]:
    """{dn: the attributes that differ} for the objects of `before` that changed (BOOKKEEPING aside)."""
    changed = {}
    for dn, attributes in before.items():
        now = after.get(dn, {})
        names = sorted(
            n for n in set(attributes) | set(now) if n not in BOOKKEEPING and attributes.get(n) != now.get(n)
        )
        if names:
            changed[dn] = names
    return changed


def _domain_settings(legacy: LegacyDC) -> dict[str, str]:
    names = ["minPwdLength", "pwdProperties", "maxPwdAge", "lockoutThreshold", "ms-DS-MachineAccountQuota"]
    found = legacy.samdb().search(legacy.base_dn, scope=ldb.SCOPE_BASE, attrs=names)[0]
    return {name: str(found[name][0]) for name in names}


# Attributes any change or replication partner moves: change stamps, the replication state of a naming
# context's head (partners, up-to-dateness), the back-links to a new DC's NTDS Settings (computed from its
# links), and a DC's sign-in counters (the old DC signs in to the new one to replicate).
BOOKKEEPING = {
    "uSNChanged", "whenChanged", "replPropertyMetaData", "dSCorePropagationData",
    "repsFrom", "repsTo", "replUpToDateVector",
    "masteredBy", "msDs-masteredBy", "msDS-IsDomainFor",
    "lastLogon", "lastLogonTimestamp", "logonCount",
}  # fmt: skip
# What a DC joining a domain writes to objects that were there before ({object: its attributes}): the RID
# Manager hands it a pool, the old DC's RID set gave its computer account a RID, the DNS partitions'
# crossRefs list it as a replica (CROSS_REF), and its DNS records join the zones' shared names (ZONES: the
# zone's root gets its NS and A records, _ldap._tcp and the other locator names its SRV records, written by
# samba_dnsupdate). Nothing else, and no account.
JOIN_TOUCHES = {
    "CN=RID Manager$,CN=System,DC=dom,DC=legacy,DC=test": ["rIDAvailablePool"],
    "CN=RID Set,CN=ES4ALLDC,OU=Domain Controllers,DC=dom,DC=legacy,DC=test": ["rIDNextRID"],
}
CROSS_REF = ",CN=Partitions,CN=Configuration,DC=dom,DC=legacy,DC=test"
ZONES = (
    ",CN=MicrosoftDNS,DC=DomainDnsZones,DC=dom,DC=legacy,DC=test",
    ",CN=MicrosoftDNS,DC=ForestDnsZones,DC=dom,DC=legacy,DC=test",
)


def test_a_dc_joins_the_existing_domain_changes_only_what_it_says_and_the_old_dc_is_demoted(
    legacy, tmp_path, test_ca, own_broker, own_keys
):
    before, settings_before = _objects(legacy), _domain_settings(legacy)
    ours = SambaDC(
        tmp_path / "dc0",
        test_ca,
        realm=legacy.realm,
        netbios_name=legacy.netbios_name,
        hostname=DC_NAME_TEMPLATE.format(index=0),
        join=legacy,
        volume_bytes=1 << 30,
        # As the operator gives dc0 of a joined domain: the policy, applied only once the domain is ours.
        password_policy=default_password_policy(),
        domain_settings="when-only-ours",
    )
    try:
        with step("dc0 joins and serves"):
            ours.start(timeout_s=300)
    except Exception as exc:
        ours.close()
        pytest.fail(f"our DC did not join the legacy domain: {exc}", pytrace=False)
    try:
        _joined_with_the_old_passwords_and_nothing_else_changed(legacy, ours, before, settings_before)
        # The worker beside our DC, as in dc0's Pod: registrations go on during the migration.
        env = {**own_broker.worker_env, **own_keys.worker_env, **own_keys.result_env(DirectoryWorker.DEFAULT_NAME)}
        worker = started(DirectoryWorker(tmp_path / "worker", {**env, **ours.worker_env}))
        client = TaskClient({**own_broker.portal_env, **own_keys.portal_env})
        try:
            with step("a registration through our DC's worker signs in on both DCs"):
                during = _registered(client, "new.during")
                wait_until(lambda: _signs_in_on_legacy(legacy, during), 180, f"{during} signing in on the old DC")
            assert password_authenticates(ours, during, PASSWORD)
            assert not _signs_in_on_legacy(legacy, during, "Not-the-Passw0rd!")
            _the_old_dc_is_demoted(legacy, ours, tmp_path)
            # The old DC is gone: what was registered through ours still signs in, and registrations go on.
            assert password_authenticates(ours, during, PASSWORD)
            with step("a registration after the old DC left"):
                after = _registered(client, "new.after", timeout_s=180)
            assert password_authenticates(ours, after, PASSWORD)
        finally:
            client.close()
            worker.stop()
    finally:
        ours.close()


def _registered(client: TaskClient, username: str, timeout_s: float = 60) -> str:
    """A registration as the portal sends it (create, then enable once the address is proven); its username."""
    created = run(client, create_task(client, username), timeout_s)
    assert (created.outcome, created.reason) == (Outcome.SUCCEEDED, ""), created
    enabled = run(client, EnableUser(username, **binding(username)), timeout_s)
    assert enabled.outcome is Outcome.SUCCEEDED, enabled
    return username


def _signs_in_on_legacy(legacy: LegacyDC, username: str, password: str = PASSWORD) -> bool:
    """Whether the old DC accepts the account's password (a bind over LDAP as the person, NTLM)."""
    try:
        legacy.samdb(username, password)
    except ldb.LdbError:
        return False
    return True


def _joined_with_the_old_passwords_and_nothing_else_changed(legacy, ours, before, settings_before) -> None:
    # The managed OU and the worker's account, made on our DC, replicate to the old one.
    managed = f"{MANAGED_OU},{legacy.base_dn}"
    worker = f"CN={WORKER_ACCOUNT},CN=Users,{legacy.base_dn}"
    with step("the managed OU and the worker's account replicate to the old DC"):
        wait_until(lambda: {managed, worker} <= set(_objects(legacy)), 180, "the managed OU and worker on the old DC")
    after = _objects(legacy)
    unexplained = {
        dn: names
        for dn, names in _changed_attributes(before, after).items()
        if names != JOIN_TOUCHES.get(dn)
        and not (dn.endswith(CROSS_REF) and names == ["msDS-NC-Replica-Locations"])
        and not (dn.endswith(ZONES) and names == ["dnsRecord"])
    }
    assert unexplained == {}, f"the join changed what it does not say it changes: {unexplained}"
    # New: our DC's own objects (computer, server, DNS records), the managed OU, the worker's account, and
    # the old DC's replication link from ours (a connection object its KCC makes).
    ours_name = ours.hostname.upper().encode()

    def explained(dn: str) -> bool:
        links_ours = b"nTDSConnection" in after[dn].get("objectClass", ()) and any(
            ours_name in value.upper() for value in after[dn].get("fromServer", ())
        )
        return ours_name.decode() in dn.upper() or dn.endswith(managed) or dn == worker or links_ours

    unexplained_new = [dn for dn in after if dn not in before and not explained(dn)]
    assert unexplained_new == [], f"the join made objects it does not say it makes: {unexplained_new}"
    # While the old DC is in the domain, its password policy and machine account quota stay as they are.
    assert _domain_settings(legacy) == settings_before
    # Every account the old worker enabled logs in on our DC with its old password; the disabled one does not.
    for person in PEOPLE:
        enabled = person.verified and person.active
        assert password_authenticates(ours, person.username, person.password) is enabled, person.username


def _the_old_dc_is_demoted(legacy, ours, tmp_path) -> None:
    steps = {
        "ES4PS_REALM": legacy.realm,
        "ES4PS_NETBIOS_NAME": legacy.netbios_name,
        "ES4PS_ADMIN_PASSWORD_FILE": str(legacy.admin_password_file),
        "ES4PS_JOIN_SERVER": ours.address,
        "ES4PS_LEAVING_DC": legacy.hostname,
        "ES4PS_LEAVING_SERVER": legacy.address,
    }
    assert set(roles_held_by(ours.samdb(), legacy.hostname)) == set(FSMO_ROLES)
    legacy.samdb().newuser("late.one", "Late-Pass-4")  # written on the old DC just before it goes
    with step("leave"):
        lifecycle_step("leave", steps, ours.address, tmp_path)
    assert roles_held_by(ours.samdb(), legacy.hostname) == []
    assert set(roles_held_by(ours.samdb(), ours.hostname)) == set(FSMO_ROLES)
    assert password_authenticates(ours, "late.one", "Late-Pass-4"), "leave did not pull the old DC's last change"
    legacy.stop()
    with step("remove"):
        # In dc0's container, as the runbook runs it: ES4PS_DATA_DIR there is dc0's own volume, which stays a DC.
        lifecycle_step("remove", {**steps, "ES4PS_DATA_DIR": str(ours.data_dir)}, ours.address, tmp_path)
    servers = {
        str(m["cn"][0]).lower()
        for m in ours.samdb().search(ours.samdb().get_config_basedn(), expression="(objectClass=server)")
    }
    assert servers == {ours.hostname}, servers
    for person in PEOPLE:
        assert password_authenticates(ours, person.username, person.password) is person.verified, person.username

    assert (ours.data_dir / MARKER_NAME).exists(), "remove retired the volume of the DC that stays"
    # The domain is ours now: dc0 writes the domain-wide settings at its next start (the same settings).
    ours.stop()
    ours.join = None  # the old DC is gone: dc0 resolves through its own DNS (as in its Pod), registers nowhere else
    with step("dc0 restarts, applying the domain-wide settings"):
        ours.start(timeout_s=180)
    settings = ours.samdb().search(
        ours.base_dn, scope=ldb.SCOPE_BASE, attrs=["minPwdLength", "ms-DS-MachineAccountQuota"]
    )[0]
    assert str(settings["ms-DS-MachineAccountQuota"][0]) == "0"
    assert int(str(settings["minPwdLength"][0])) == default_password_policy().min_length
    _the_old_accounts_are_moved_where_they_can_be_claimed(ours, tmp_path)


def _the_old_accounts_are_moved_where_they_can_be_claimed(ours, tmp_path) -> None:
    """The runbook's third step on the accounts the join replicated (docs/migration.md): the Administrator moves
    those the portal imported into the managed OU with their mail; their old passwords keep working."""
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps([{"username": p.username, "email": p.email} for p in PEOPLE]))
    with step("move-legacy-accounts"):
        code, report, stderr = move_legacy_accounts(ours, accounts)
    assert code == 0, stderr
    assert sorted(report["moved"]) == ["ana.lima", "bruno"]
    # carla never verified her address: the old worker left her account disabled, and a claim would enable it.
    assert [entry["username"] for entry in report["skipped"]] == ["carla"]
    for person in PEOPLE[:2]:
        account = ours.samdb().search(
            ours.base_dn, expression=f"(sAMAccountName={person.username})", attrs=["mail", "adminDescription"]
        )[0]
        assert str(account.dn).endswith(f"{MANAGED_OU},{ours.base_dn}") and str(account["mail"][0]) == person.email
        assert "adminDescription" not in account, "the move wrote a binding"
        assert password_authenticates(ours, person.username, person.password)


def lifecycle_step(step: str, env: dict[str, str], resolver: str, directory: Path) -> None:
    """`es4ps-samba-dc <step>` as run in dc0's Pod (the runbook's kubectl exec): resolving through the domain's
    DNS (`resolver`), as dc0's Pod does; the DNS zones' roles are transferred through their masters' names."""
    resolv = directory / "resolv.conf"
    resolv.write_text(f"nameserver {resolver}\n")
    private = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", private, str(resolv)]
        + [str(VENV_BIN / "es4ps-samba-dc"), step],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"es4ps-samba-dc {step} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
