"""The worker's rights end at the managed OU, an account only follows its registration, a task applies once.

Against the real DC and broker: the worker binds as its own account (made by
the DC's entrypoint), never as the Administrator.
"""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import time
import uuid

import ldb
import pytest
from es4ps_contract.events import Outcome
from es4ps_contract.tasks import DeleteUser, DisableUser, EnableUser, SetPassword, UpdateAttributes
from es4ps_testkit.samba import find_account, password_authenticates
from es4ps_testkit.tasks import PASSWORD, binding, create_task, run
from es4ps_testkit.worker import DirectoryWorker
from samba.dsdb import UF_ACCOUNTDISABLE

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("directory_worker")]

NEWER_PASSWORD = "N3wer-Passw0rd!x"
OTHER_PASSWORD = "0ther-Pers0n!pass"


def worker_samdb(samba_dc):
    """A connection with the worker's own credential, as the worker makes it."""
    return samba_dc.samdb("es4ps-worker", samba_dc.worker_password)


def refused(action) -> int:
    with pytest.raises(ldb.LdbError) as caught:
        action()
    return caught.value.args[0]


def test_the_worker_credential_is_refused_outside_its_ou(samba_dc, username):
    samdb = worker_samdb(samba_dc)
    domain = samba_dc.base_dn
    # A staff account elsewhere, and Domain Admins.
    samba_dc.samdb().newuser(username, "Staff-Passw0rd!1", setpassword=True)
    staff_dn = f"CN={username},CN=Users,{domain}"

    def modify(dn: str, attribute: str, value: str | bytes, flag=ldb.FLAG_MOD_REPLACE):
        message = ldb.Message(ldb.Dn(samdb, dn))
        message[attribute] = ldb.MessageElement(value, flag, attribute)
        samdb.modify(message)

    denied = {ldb.ERR_INSUFFICIENT_ACCESS_RIGHTS, ldb.ERR_CONSTRAINT_VIOLATION}
    assert refused(lambda: modify(staff_dn, "description", "owned")) in denied
    assert refused(lambda: modify(staff_dn, "unicodePwd", '"Taken-0ver!pass"'.encode("utf-16-le"))) in denied
    assert refused(lambda: modify(f"CN=Administrator,CN=Users,{domain}", "displayName", "x")) in denied
    assert (
        refused(lambda: modify(f"CN=Domain Admins,CN=Users,{domain}", "member", staff_dn, ldb.FLAG_MOD_ADD)) in denied
    )
    assert (
        refused(lambda: samdb.add({"dn": f"CN=intruder-{username},CN=Users,{domain}", "objectClass": "user"})) in denied
    )
    # The gidNumber it may give a policy's groups: not to the domain's groups outside its OU.
    assert refused(lambda: modify(f"CN=Domain Admins,CN=Users,{domain}", "gidNumber", "10512")) in denied
    # Nothing changed out there.
    staff = samba_dc.samdb().search(ldb.Dn(samdb, staff_dn), scope=ldb.SCOPE_BASE, attrs=["description", "memberOf"])
    assert "description" not in staff[0] and "memberOf" not in staff[0]
    # And the same credential does work inside its OU.
    inside = f"CN=probe-{username},OU=ES4PS,{domain}"
    samdb.add({"dn": inside, "objectClass": "user", "sAMAccountName": f"p{username}"[:20]})
    samdb.delete(inside)


def test_another_registration_cannot_enable_reset_change_or_delete_an_account(task_client, samba_dc, username):
    """The takeover: the portal lost its record, someone registers the name again (another registration)."""
    assert run(task_client, create_task(task_client, username)).outcome is Outcome.SUCCEEDED
    intruder = binding(username, registration=str(uuid.uuid4())) | {"email": "intruder@acme.example"}
    sealed = task_client.seal(username, OTHER_PASSWORD)

    events = [
        run(task_client, create_task(task_client, username, password=OTHER_PASSWORD, **intruder)),
        run(task_client, EnableUser(username, **intruder)),
        run(task_client, SetPassword(username, sealed_password=sealed, **intruder)),
        run(task_client, UpdateAttributes(username, attributes={"given_name": "Mallory"}, **intruder)),
        run(task_client, DisableUser(username, **intruder)),
        run(task_client, DeleteUser(username, **intruder)),
    ]

    assert [(e.outcome, e.reason) for e in events] == [
        (Outcome.FAILED, "the username is already taken"),
        *[(Outcome.FAILED, "the account belongs to another registration")] * 5,
    ]
    account = find_account(samba_dc, username)
    assert account is not None and int(account["userAccountControl"][0]) & UF_ACCOUNTDISABLE
    assert str(account["givenName"][0]) == "Ana"
    # The owner's registration still can: its password is the one it chose, not the intruder's.
    assert run(task_client, EnableUser(username, **binding(username))).outcome is Outcome.SUCCEEDED
    assert password_authenticates(samba_dc, username, PASSWORD)
    assert not password_authenticates(samba_dc, username, OTHER_PASSWORD)


def test_a_task_published_again_is_not_applied_again(task_client, samba_dc, username):
    run(task_client, create_task(task_client, username))
    run(task_client, EnableUser(username, **binding(username)))
    disable = DisableUser(username, **binding(username))
    task_id = task_client.submit(disable)
    first = task_client.wait_for(task_id)
    run(task_client, EnableUser(username, **binding(username)))  # staff enabled it again, later

    # The captured disable, published again with its own id and signature.
    task_client.results.pop(task_id)
    task_client.publish(disable.operation, task_client.envelope(disable, task_id), task_id)
    again = task_client.wait_for(task_id)

    assert again == first  # the recorded outcome, reported once more
    assert not int(find_account(samba_dc, username)["userAccountControl"][0]) & UF_ACCOUNTDISABLE


def test_a_captured_password_task_never_overwrites_a_newer_one_on_any_dc(
    tmp_path, task_client, samba_dc, directory_worker, worker_env, contract_keys, username
):
    """Another DC's worker has not seen the task id: the account's own marks refuse the older task."""
    run(task_client, create_task(task_client, username))
    run(task_client, EnableUser(username, **binding(username)))
    older = SetPassword(username, sealed_password=task_client.seal(username, PASSWORD), **binding(username))
    older_id = str(uuid.uuid4())
    captured = task_client.envelope(older, older_id)
    time.sleep(1.1)  # issue times are whole seconds
    newer = SetPassword(username, sealed_password=task_client.seal(username, NEWER_PASSWORD), **binding(username))
    assert run(task_client, newer).outcome is Outcome.SUCCEEDED

    directory_worker.stop()
    other_dc_worker = DirectoryWorker(
        tmp_path / "other",
        {
            **worker_env,
            **contract_keys.result_env("other-dc"),
            "ES4PS_WORKER_STATE_DIR": str(tmp_path / "other-state"),
        },
        name="other-dc",
    )
    (tmp_path / "other-state").mkdir()
    other_dc_worker.start()
    try:
        task_client.publish(older.operation, captured, older_id)
        replayed = task_client.wait_for(older_id)
    finally:
        other_dc_worker.stop()
        directory_worker.start()

    assert (replayed.outcome, replayed.reason, replayed.worker) == (
        Outcome.NOT_APPLIED,
        "superseded by a newer change",
        "other-dc",
    )
    assert password_authenticates(samba_dc, username, NEWER_PASSWORD)
    assert not password_authenticates(samba_dc, username, PASSWORD)
