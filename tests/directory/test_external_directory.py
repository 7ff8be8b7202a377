"""External mode: the worker provisions into an OU of an Active Directory the organisation already runs.

The outside directory is a Samba AD DC process of its own domain, provisioned
by samba-tool and set as close to Microsoft AD's defaults as Samba allows
(es4ps_testkit.outside_ad), reached over LDAPS by its DNS name with its CA
checked. Its administrator made a plain account and delegated one OU to it
with `es4ps-samba-dc delegate`; the real worker (`es4ps-worker`, the same
process as beside a DC) binds as that account and takes signed tasks from its
own broker. Nothing here runs in a cluster.
"""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import time
from collections.abc import Iterator

import ldb
import pytest
from es4ps_contract.events import Outcome
from es4ps_contract.passwords import PASSWORD_REFUSED_REASON
from es4ps_contract.tasks import ApplyPolicy, DeleteUser, DisableUser, EnableUser, SetPassword
from es4ps_testkit.ca import ThrowawayCA
from es4ps_testkit.outside_ad import DELEGATED_OU as MANAGED
from es4ps_testkit.outside_ad import PEOPLE_OU as PEOPLE
from es4ps_testkit.outside_ad import SERVICE_ACCOUNT, SERVICE_PASSWORD, external_env
from es4ps_testkit.plugins.services import started
from es4ps_testkit.samba import find_account, ldap_session, password_authenticates
from es4ps_testkit.tasks import PASSWORD, TaskClient, binding, create_task, run
from es4ps_testkit.worker import DirectoryWorker
from ldap3 import MODIFY_ADD, MODIFY_DELETE
from samba.dcerpc import drsblobs
from samba.dsdb import UF_ACCOUNTDISABLE
from samba.ndr import ndr_unpack

pytestmark = pytest.mark.services

NEW_PASSWORD = "An0ther-Horse!staple"
UNIX = {
    "uid_range_start": 20000,
    "uid_range_end": 999999,
    "gid_number": 20513,
    "login_shell": "/bin/bash",
    "home_directory": "/home/placeholder",
}


@pytest.fixture(scope="module")
def external_worker(outside_ad, own_broker, own_keys, tmp_path_factory) -> Iterator[DirectoryWorker]:
    env = external_env(outside_ad, own_broker, own_keys, tmp_path_factory)
    worker = started(DirectoryWorker(tmp_path_factory.mktemp("external-worker"), env, wrap=outside_ad.with_hosts))
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def client(own_broker, own_keys, external_worker) -> Iterator[TaskClient]:
    task_client = TaskClient({**own_broker.portal_env, **own_keys.portal_env})
    yield task_client
    task_client.close()


def refused(action) -> int:
    with pytest.raises(ldb.LdbError) as caught:
        action()
    return caught.value.args[0]


def uac(outside_ad, username: str) -> int:
    account = find_account(outside_ad, username, attrs=["userAccountControl"])
    assert account is not None
    return int(account["userAccountControl"][0])


def test_an_account_is_created_in_the_delegated_ou_and_signs_in_once_enabled(client, outside_ad, username):
    created = run(client, create_task(client, username))
    assert (created.outcome, created.reason) == (Outcome.SUCCEEDED, "")
    account = find_account(outside_ad, username)
    assert str(account.dn).lower() == f"cn={username},{MANAGED},{outside_ad.base_dn}".lower()
    assert uac(outside_ad, username) & UF_ACCOUNTDISABLE
    assert not password_authenticates(outside_ad, username, PASSWORD)

    assert run(client, EnableUser(username, **binding(username))).outcome is Outcome.SUCCEEDED

    # The portal's sign-in: a simple bind over LDAPS to the outside directory.
    assert password_authenticates(outside_ad, username, PASSWORD)
    assert not password_authenticates(outside_ad, username, "Wr0ng-Horse!battery")


def test_password_change_reset_and_refusal_follow_the_directory_rules(client, outside_ad, username):
    run(client, create_task(client, username))
    run(client, EnableUser(username, **binding(username)))

    changed = run(
        client, SetPassword(username, sealed_password=client.seal(username, NEW_PASSWORD), **binding(username))
    )
    assert changed.outcome is Outcome.SUCCEEDED
    assert password_authenticates(outside_ad, username, NEW_PASSWORD)
    # The directory's maximum age counts from the write: pwdLastSet is now (0 would mean "must change").
    assert abs(password_last_set(outside_ad, username) - time.time()) < 300
    # The old one may still work for the directory's old-password window (60 minutes by default, Microsoft's
    # OldPasswordAllowedPeriod, which Samba applies to simple binds too): the organisation's setting, not ours.

    # Microsoft AD's documented rule for a reset (what the worker does, holding Reset Password): neither the
    # history (24 here) nor the minimum age (a day here) applies; the outside directory follows it too.
    back = run(client, SetPassword(username, sealed_password=client.seal(username, PASSWORD), **binding(username)))
    assert (back.outcome, back.reason) == (Outcome.SUCCEEDED, "")
    assert password_authenticates(outside_ad, username, PASSWORD)
    # The person's own change (with the old password, as at a workstation) to a password never used: the
    # directory applies the minimum age to it, and refuses it the day of the last reset.
    assert own_change(outside_ad, username, PASSWORD, "Never-Used-H0rse!7") == (19, "0000052D")
    assert password_authenticates(outside_ad, username, PASSWORD)
    # A password the domain's policy refuses: constraintViolation with 0000052D, told to the person as such.
    weak = run(client, SetPassword(username, sealed_password=client.seal(username, "abc"), **binding(username)))
    assert (weak.outcome, weak.reason) == (Outcome.FAILED, PASSWORD_REFUSED_REASON)
    assert password_authenticates(outside_ad, username, PASSWORD)


def password_last_set(outside_ad, username: str) -> float:
    """The account's pwdLastSet as a Unix time (it counts 100 ns from 1601)."""
    found = find_account(outside_ad, username, attrs=["pwdLastSet"])
    return int(found["pwdLastSet"][0]) / 10_000_000 - 11_644_473_600


def own_change(outside_ad, username: str, old: str, new: str) -> tuple[int, str]:
    """A person's own password change over LDAPS (delete the old value, add the new one, bound as themselves):
    the LDAP result code and the Win32 error leading the message."""
    session = ldap_session(outside_ad, username, old)
    assert session.bind()
    try:
        session.modify(
            str(find_account(outside_ad, username).dn),
            {
                "unicodePwd": [
                    (MODIFY_DELETE, [f'"{old}"'.encode("utf-16-le")]),
                    (MODIFY_ADD, [f'"{new}"'.encode("utf-16-le")]),
                ]
            },
        )
        return session.result["result"], session.result["message"][:8]
    finally:
        session.unbind()


def test_disable_and_delete_reach_the_outside_directory(client, outside_ad, username):
    run(client, create_task(client, username))
    run(client, EnableUser(username, **binding(username)))
    assert password_authenticates(outside_ad, username, PASSWORD)

    assert run(client, DisableUser(username, **binding(username))).outcome is Outcome.SUCCEEDED
    assert uac(outside_ad, username) & UF_ACCOUNTDISABLE
    assert not password_authenticates(outside_ad, username, PASSWORD)

    assert run(client, DeleteUser(username, **binding(username))).outcome is Outcome.SUCCEEDED
    assert find_account(outside_ad, username) is None


def test_a_policy_places_ou_groups_and_unix_attributes_in_the_outside_directory(client, outside_ad, username):
    ou, group = f"Students {username}", f"students-{username}"
    unix = {**UNIX, "home_directory": f"/home/{username}"}
    created = run(client, create_task(client, username, ou=ou, groups=(group,), unix=unix))
    assert (created.outcome, created.reason) == (Outcome.SUCCEEDED, "")

    account = find_account(outside_ad, username, attrs=["memberOf", "uidNumber", "loginShell", "unixHomeDirectory"])
    assert str(account.dn).lower() == f"cn={username},ou={ou},{MANAGED},{outside_ad.base_dn}".lower()
    assert [str(value).lower() for value in account["memberOf"]] == [
        f"cn={group},{MANAGED},{outside_ad.base_dn}".lower()
    ]
    assert int(account["uidNumber"][0]) > UNIX["uid_range_start"]
    assert (str(account["loginShell"][0]), str(account["unixHomeDirectory"][0])) == ("/bin/bash", f"/home/{username}")

    staff = f"Staff {username}"
    moved = run(client, ApplyPolicy(username, ou=staff, groups=(), **binding(username)))
    assert moved.outcome is Outcome.SUCCEEDED
    account = find_account(outside_ad, username, attrs=["memberOf"])
    assert str(account.dn).lower() == f"cn={username},ou={staff},{MANAGED},{outside_ad.base_dn}".lower()
    assert "memberOf" not in account


def test_the_delegated_account_is_refused_outside_its_ou(outside_ad, username):
    """The attacker holds the worker's credential (the Secret leaked): the directory refuses it everywhere but
    its OU, including the OU above it."""
    samdb = outside_ad.samdb(SERVICE_ACCOUNT, SERVICE_PASSWORD)
    domain = outside_ad.base_dn
    outside_ad.add_user(username, "Staff-Passw0rd!1")
    staff_dn = f"CN={username},CN=Users,{domain}"

    def modify(dn: str, attribute: str, value: str | bytes, flag=ldb.FLAG_MOD_REPLACE):
        message = ldb.Message(ldb.Dn(samdb, dn))
        message[attribute] = ldb.MessageElement(value, flag, attribute)
        samdb.modify(message)

    denied = {ldb.ERR_INSUFFICIENT_ACCESS_RIGHTS, ldb.ERR_CONSTRAINT_VIOLATION}
    assert refused(lambda: modify(staff_dn, "description", "owned")) in denied
    assert refused(lambda: modify(staff_dn, "unicodePwd", '"Taken-0ver!pass"'.encode("utf-16-le"))) in denied
    assert refused(lambda: modify(staff_dn, "userAccountControl", "514")) in denied
    assert refused(lambda: modify(f"CN=Administrator,CN=Users,{domain}", "displayName", "x")) in denied
    assert (
        refused(lambda: modify(f"CN=Domain Admins,CN=Users,{domain}", "member", staff_dn, ldb.FLAG_MOD_ADD)) in denied
    )
    for parent in (f"CN=Users,{domain}", f"{PEOPLE},{domain}"):
        assert refused(lambda p=parent: samdb.add({"dn": f"CN=x-{username},{p}", "objectClass": "user"})) in denied
    # Nor can it take itself out of reach or give itself more: it lives outside the OU.
    assert refused(lambda: modify(f"CN={SERVICE_ACCOUNT},CN=Users,{domain}", "description", "x")) in denied
    staff = outside_ad.samdb().search(ldb.Dn(samdb, staff_dn), scope=ldb.SCOPE_BASE, attrs=["description"])
    assert "description" not in staff[0]
    assert password_authenticates(outside_ad, username, "Staff-Passw0rd!1")


def test_the_worker_refuses_to_run_with_domain_admin_rights(outside_ad, own_broker, own_keys, tmp_path_factory):
    env = external_env(outside_ad, own_broker, own_keys, tmp_path_factory, "Administrator", outside_ad.admin_password)
    worker = DirectoryWorker(tmp_path_factory.mktemp("admin-worker"), env, wrap=outside_ad.with_hosts)

    assert worker.run_to_exit() == 3
    log = worker.log.read_text()
    assert "refused (TooManyRights: the account Administrator" in log
    assert "holds Domain Admins" in log
    assert outside_ad.admin_password not in log
    assert "ready." not in log


def test_the_worker_refuses_an_account_added_to_a_privileged_group(outside_ad, own_broker, own_keys, tmp_path_factory):
    name = "svc-overprivileged"
    outside_ad.add_user(name, SERVICE_PASSWORD)
    outside_ad.samdb().add_remove_group_members("Account Operators", [name])
    env = external_env(outside_ad, own_broker, own_keys, tmp_path_factory, name)
    worker = DirectoryWorker(tmp_path_factory.mktemp("operator-worker"), env, wrap=outside_ad.with_hosts)

    assert worker.run_to_exit() == 3
    assert "holds Account Operators" in worker.log.read_text()


def test_the_worker_refuses_credentials_the_directory_rejects(outside_ad, own_broker, own_keys, tmp_path_factory):
    env = external_env(outside_ad, own_broker, own_keys, tmp_path_factory, password="Not-The-Passw0rd!")
    worker = DirectoryWorker(tmp_path_factory.mktemp("wrong-worker"), env, wrap=outside_ad.with_hosts)

    assert worker.run_to_exit() == 3
    log = worker.log.read_text()
    assert f"refused (CredentialsRefused: the directory at {outside_ad.ldaps_url}" in log
    assert "Not-The-Passw0rd!" not in log


def highest_usn(outside_ad) -> int:
    """The directory's highestCommittedUSN: it moves with every write."""
    return int(
        outside_ad.samdb().search(base="", scope=ldb.SCOPE_BASE, attrs=["highestCommittedUSN"])[0][
            "highestCommittedUSN"
        ][0]
    )


# lastLogonTimestamp (1.2.840.113556.1.4.1696): the directory's own record of a bind, no write of the worker's.
LAST_LOGON_TIMESTAMP_ATTID = 0x906A0


def writes_since(outside_ad, usn: int) -> dict[str, list[str]]:
    """{dn: the attributes changed (their attribute ids)} of every object written after `usn`, the directory's
    record of a sign-in aside."""
    samdb = outside_ad.samdb()
    changed = {}
    for partition in (outside_ad.base_dn, str(samdb.get_config_basedn())):
        for found in samdb.search(
            partition, scope=ldb.SCOPE_SUBTREE, expression=f"(uSNChanged>={usn + 1})", attrs=["replPropertyMetaData"]
        ):
            blob = ndr_unpack(drsblobs.replPropertyMetaDataBlob, found["replPropertyMetaData"][0])
            attributes = sorted(
                hex(entry.attid)
                for entry in blob.ctr.array
                if entry.local_usn > usn and entry.attid != LAST_LOGON_TIMESTAMP_ATTID
            )
            if attributes:
                changed[str(found.dn)] = attributes
    return changed


def refusal(outside_ad, own_broker, own_keys, tmp_path_factory, **changes: str) -> str:
    """Run the worker with `changes` to what the operator gives it; its log, once it refused to start (exit 3)
    having written nothing to the directory."""
    env = {**external_env(outside_ad, own_broker, own_keys, tmp_path_factory), **changes}
    worker = DirectoryWorker(tmp_path_factory.mktemp("refused-worker"), env, wrap=outside_ad.with_hosts)
    before = highest_usn(outside_ad)
    code = worker.run_to_exit(timeout_s=60)
    log = worker.log.read_text()
    assert code == 3, log[-2000:]
    assert writes_since(outside_ad, before) == {}, "the refused worker wrote to the directory"
    assert SERVICE_PASSWORD not in log and "ready." not in log
    return log


def test_the_worker_refuses_a_directory_whose_certificate_the_ca_does_not_verify(
    outside_ad, own_broker, own_keys, tmp_path_factory
):
    """caSecretRef holds another CA than the one that issued the directory's certificate: a man in the middle
    would look the same, so the worker neither binds nor waits: it names the reason."""
    other = ThrowawayCA(tmp_path_factory.mktemp("other-ca"), name="Not the directory's CA")
    log = refusal(outside_ad, own_broker, own_keys, tmp_path_factory, ES4PS_LDAP_CA_FILE=str(other.ca_file))
    assert f"refused (UntrustedCertificate: the certificate of the directory at {outside_ad.ldaps_url}" in log
    assert "unable to get local issuer certificate" in log


def test_the_worker_refuses_a_directory_whose_certificate_names_another_host(
    outside_ad, own_broker, own_keys, tmp_path_factory
):
    # The short name resolves to the directory too, but its certificate names only the full one.
    url = f"ldaps://{outside_ad.hostname}:636"
    log = refusal(outside_ad, own_broker, own_keys, tmp_path_factory, ES4PS_LDAP_URL=url)
    assert f"refused (UntrustedCertificate: the certificate of the directory at {url}" in log
    assert "Hostname mismatch" in log


def test_the_worker_refuses_a_ca_file_without_a_certificate(outside_ad, own_broker, own_keys, tmp_path_factory):
    bogus = tmp_path_factory.mktemp("bogus-ca") / "ca.crt"
    bogus.write_text("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
    log = refusal(outside_ad, own_broker, own_keys, tmp_path_factory, ES4PS_LDAP_CA_FILE=str(bogus))
    assert f"refused (InvalidCA: the CA file {bogus} holds no usable CA certificate" in log


def test_the_worker_refuses_an_ou_the_directory_does_not_have(outside_ad, own_broker, own_keys, tmp_path_factory):
    missing = f"OU=Nowhere,{PEOPLE}"
    log = refusal(outside_ad, own_broker, own_keys, tmp_path_factory, ES4PS_USERS_OU=missing)
    assert f"refused (OUNotFound: the OU {missing},{outside_ad.base_dn} (spec.directory.external.ou)" in log
    assert outside_ad.samdb().search(base=outside_ad.base_dn, expression="(ou=Nowhere)").count == 0


def test_the_worker_refuses_an_ou_that_was_not_delegated_to_it(outside_ad, own_broker, own_keys, tmp_path_factory):
    undelegated = f"OU=Undelegated,{PEOPLE}"
    outside_ad.samdb().add({"dn": f"{undelegated},{outside_ad.base_dn}", "objectClass": "organizationalUnit"})
    log = refusal(outside_ad, own_broker, own_keys, tmp_path_factory, ES4PS_USERS_OU=undelegated)
    assert "refused (NotDelegated: " in log
    assert f"the OU was not delegated to {SERVICE_ACCOUNT} (run es4ps-samba-dc delegate on it)" in log


def test_tasks_wait_while_the_outside_directory_is_away(client, outside_ad, external_worker, username):
    outside_ad.stop()
    try:
        task_id = client.submit(create_task(client, username))
        # Past the worker's retry limit (1), the task still waits for the directory instead of failing.
        external_worker.wait_for_log(f"task {task_id} (create_user {username}): the directory is unavailable")
        external_worker.wait_for_log(
            f"task {task_id} (create_user {username}): the directory is unavailable (LDAP error 1); retry 3"
        )
    finally:
        outside_ad.start()

    assert client.wait_for(task_id, timeout_s=120).outcome is Outcome.SUCCEEDED
    assert find_account(outside_ad, username) is not None


def test_an_outage_does_not_use_up_the_retries_of_a_missing_account(client, outside_ad, external_worker, username):
    """After the directory was away past the retry limit, a task whose account is not there yet (an enable that
    came back before its create) still gets its retries for a missing account before it fails."""
    outside_ad.stop()
    try:
        task_id = client.submit(EnableUser(username, **binding(username)))
        external_worker.wait_for_log(
            f"task {task_id} (enable_user {username}): the directory is unavailable (LDAP error 1); retry 3"
        )
    finally:
        outside_ad.start()

    failed = client.wait_for(task_id, timeout_s=120)
    assert (failed.outcome, failed.reason) == (Outcome.FAILED, "the account was not found (retries exhausted)")
    assert f"task {task_id} (enable_user {username}): {username} not found; retry" in external_worker.log.read_text()
