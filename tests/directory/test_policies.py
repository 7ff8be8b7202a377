"""Policies in the directory: an account's OU, groups and Unix attributes, inside the managed OU only.

Against the real DC, broker and worker (bound as its own account). OU and group
names carry the test's username, since the session's tests share one domain.
"""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import time
import uuid

import ldb
import pytest
from es4ps_contract.events import Outcome
from es4ps_contract.signing import sign_envelope
from es4ps_contract.tasks import ApplyPolicy, EnableUser, Operation
from es4ps_testkit.samba import find_account, password_authenticates
from es4ps_testkit.tasks import PASSWORD, binding, create_task, run
from es4ps_testkit.worker import DirectoryWorker
from samba.dcerpc import security
from samba.ndr import ndr_unpack

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("directory_worker")]

UNIX = {
    "uid_range_start": 10000,
    "uid_range_end": 999999,
    "gid_number": 10513,
    "login_shell": "/bin/bash",
    "home_directory": "/home/placeholder",
}


def unix_for(username: str) -> dict:
    return {**UNIX, "home_directory": f"/home/{username}"}


def rid(account: ldb.Message) -> int:
    return int(str(ndr_unpack(security.dom_sid, account["objectSid"][0])).rsplit("-", 1)[1])


def account_of(samba_dc, username: str) -> ldb.Message:
    attrs = ["objectSid", "uidNumber", "gidNumber", "loginShell", "unixHomeDirectory", "memberOf"]
    account = find_account(samba_dc, username, attrs=attrs)
    assert account is not None
    return account


def groups_of(account: ldb.Message) -> set[str]:
    """The account's groups as their first RDN value, lower case."""
    return {str(value).split(",", 1)[0].removeprefix("CN=").lower() for value in account.get("memberOf") or ()}


def test_a_policy_puts_the_account_into_its_ou_and_groups_with_unix_attributes(task_client, samba_dc, username):
    ou, students, wifi = f"Students {username}", f"students-{username}", f"wifi-{username}"
    task = create_task(task_client, username, ou=ou, groups=(students, wifi), unix=unix_for(username))

    created = run(task_client, task)

    assert (created.outcome, created.reason) == (Outcome.SUCCEEDED, "")
    account = account_of(samba_dc, username)
    assert str(account.dn).lower() == f"cn={username},ou={ou},ou=es4ps,{samba_dc.base_dn}".lower()
    assert groups_of(account) == {students, wifi}
    # The groups were made in the managed OU itself, so every policy can share them, each with a gidNumber by
    # the uids' rule (Linux members reading the directory's numbers list them).
    gids = {}
    for group in (students, wifi):
        found = samba_dc.samdb().search(
            samba_dc.base_dn, expression=f"(sAMAccountName={group})", attrs=["objectSid", "gidNumber"]
        )
        assert str(found[0].dn).lower() == f"cn={group},ou=es4ps,{samba_dc.base_dn}".lower()
        gids[group] = int(found[0]["gidNumber"][0])
        assert gids[group] == UNIX["uid_range_start"] + rid(found[0])
    assert int(account["uidNumber"][0]) == UNIX["uid_range_start"] + rid(account)
    assert (str(account["gidNumber"][0]), str(account["loginShell"][0]), str(account["unixHomeDirectory"][0])) == (
        "10513",
        "/bin/bash",
        f"/home/{username}",
    )
    # A second account of the same policy uses the same OU and groups.
    other = f"{username}b"
    assert run(task_client, create_task(task_client, other, ou=ou, groups=(wifi,))).outcome is Outcome.SUCCEEDED
    assert groups_of(account_of(samba_dc, other)) == {wifi}
    assert account_of(samba_dc, other).get("uidNumber") is None  # no Unix attributes asked for
    # Another policy's range later never renumbers a group.
    third = f"{username}c"
    later = {**unix_for(third), "uid_range_start": 500000}
    assert run(task_client, create_task(task_client, third, groups=(wifi,), unix=later)).outcome is Outcome.SUCCEEDED
    found = samba_dc.samdb().search(samba_dc.base_dn, expression=f"(sAMAccountName={wifi})", attrs=["gidNumber"])
    assert int(found[0]["gidNumber"][0]) == gids[wifi]


def test_a_create_delivered_again_finishes_what_it_started(task_client, samba_dc, username):
    group = f"late-{username}"
    task = create_task(task_client, username, groups=(group,), unix=unix_for(username))
    first = task_client.submit(task)
    assert task_client.wait_for(first).outcome is Outcome.SUCCEEDED
    # What a crash between the add and the rest leaves: the account without its uid and its group.
    admin = samba_dc.samdb()
    account = account_of(samba_dc, username)
    message = ldb.Message(account.dn)
    message["uidNumber"] = ldb.MessageElement([], ldb.FLAG_MOD_DELETE, "uidNumber")
    admin.modify(message)
    group_dn = admin.search(samba_dc.base_dn, expression=f"(sAMAccountName={group})")[0].dn
    message = ldb.Message(group_dn)
    message["member"] = ldb.MessageElement(str(account.dn), ldb.FLAG_MOD_DELETE, "member")
    admin.modify(message)

    again = run(task_client, task)  # the same create, under a new id (a redelivery to another DC's worker)

    assert again.outcome is Outcome.SUCCEEDED
    account = account_of(samba_dc, username)
    assert int(account["uidNumber"][0]) == UNIX["uid_range_start"] + rid(account)
    assert groups_of(account) == {group}


def publish_signed(task_client, operation: Operation, payload: dict):
    """Sign a payload without validating it, as a publisher holding the key but skipping the contract could."""
    task_id = str(uuid.uuid4())
    task_client.publish(operation, sign_envelope(task_client.signing_key, operation, task_id, payload), task_id)
    return task_client.wait_for(task_id)


@pytest.mark.parametrize("group", ["Domain Admins", "enterprise admins", "Administrators", "Account Operators"])
def test_a_task_naming_a_privileged_group_is_rejected_and_nothing_is_created(task_client, samba_dc, username, group):
    payload = create_task(task_client, username).payload() | {"groups": ["wifi", group]}

    event = publish_signed(task_client, Operation.CREATE_USER, payload)

    assert event.outcome is Outcome.REJECTED
    assert event.reason.startswith("groups: ") and "privileged" in event.reason
    assert find_account(samba_dc, username) is None


def test_a_group_of_that_name_outside_the_managed_ou_is_never_used(task_client, samba_dc, username):
    staff_group = f"teachers-{username}"
    samba_dc.samdb().newgroup(staff_group)  # staff made it in CN=Users

    event = run(task_client, create_task(task_client, username, groups=(staff_group,)))

    assert (event.outcome, event.reason) == (
        Outcome.FAILED,
        f"the group name {staff_group} is taken by another object of the domain",
    )
    assert find_account(samba_dc, username) is None  # refused before anything was written
    members = samba_dc.samdb().search(samba_dc.base_dn, expression=f"(sAMAccountName={staff_group})", attrs=["member"])
    assert "member" not in members[0]


def test_staff_move_an_account_to_another_policy(task_client, samba_dc, username):
    students_ou, staff_ou = f"Students {username}", f"Staff {username}"
    students, wifi, staff = f"students-{username}", f"wifi-{username}", f"staff-{username}"
    run(task_client, create_task(task_client, username, ou=students_ou, groups=(students, wifi)))
    run(task_client, EnableUser(username, **binding(username)))
    # A group staff manage by hand, outside the managed OU: moves never touch it.
    outside = f"library-{username}"
    admin = samba_dc.samdb()
    admin.newgroup(outside)
    admin.add_remove_group_members(outside, [username], add_members_operation=True)
    older = ApplyPolicy(username, ou=students_ou, groups=(students,), **binding(username))
    older_id = str(uuid.uuid4())
    captured = task_client.envelope(older, older_id)
    time.sleep(1.1)  # issue times are whole seconds

    move = ApplyPolicy(username, ou=staff_ou, groups=(staff, wifi), **binding(username))
    moved = run(task_client, move)

    assert (moved.outcome, moved.reason) == (Outcome.SUCCEEDED, "")
    account = account_of(samba_dc, username)
    assert str(account.dn).lower() == f"cn={username},ou={staff_ou},ou=es4ps,{samba_dc.base_dn}".lower()
    assert groups_of(account) == {staff, wifi, outside}
    assert password_authenticates(samba_dc, username, PASSWORD)  # the same account, only moved
    # The same move again changes nothing; a captured older one is not applied (the account's policy mark).
    assert run(task_client, move).outcome is Outcome.SUCCEEDED
    task_client.publish(older.operation, captured, older_id)
    replayed = task_client.wait_for(older_id)
    assert (replayed.outcome, replayed.reason) == (Outcome.NOT_APPLIED, "superseded by a newer change")
    assert groups_of(account_of(samba_dc, username)) == {staff, wifi, outside}

    # Another registration cannot move it.
    intruder = binding(username, registration=str(uuid.uuid4()))
    refused = run(task_client, ApplyPolicy(username, ou="", groups=(), **intruder))
    assert (refused.outcome, refused.reason) == (Outcome.FAILED, "the account belongs to another registration")


def test_a_worker_that_does_not_create_containers_waits_for_them(
    tmp_path, task_client, samba_dc, directory_worker, worker_env, contract_keys, username
):
    """With several DCs one worker creates policies' OUs and groups; the others wait for them to replicate."""
    ou = f"New {username}"
    directory_worker.stop()
    waiting = DirectoryWorker(
        tmp_path / "waiting",
        {
            **worker_env,
            **contract_keys.result_env("waiting-dc"),
            "ES4PS_WORKER_CREATES_CONTAINERS": "0",
            "ES4PS_WORKER_MAX_RETRIES": "1",
        },
        name="waiting-dc",
    )
    waiting.start()
    try:
        event = run(task_client, create_task(task_client, username, ou=ou))
    finally:
        waiting.stop()
        directory_worker.start()

    assert (event.outcome, event.reason, event.worker) == (
        Outcome.FAILED,
        f"the OU {ou} was not found (retries exhausted)",
        "waiting-dc",
    )
    assert find_account(samba_dc, username) is None
    assert not samba_dc.samdb().search(samba_dc.base_dn, expression=f"(ou={ou})")


def test_moving_an_account_made_before_unix_attributes_gives_it_some_and_never_changes_them(
    task_client, samba_dc, username
):
    run(task_client, create_task(task_client, username))  # no Unix attributes yet
    assert account_of(samba_dc, username).get("uidNumber") is None

    moved = run(task_client, ApplyPolicy(username, ou="", groups=(), unix=unix_for(username), **binding(username)))

    assert moved.outcome is Outcome.SUCCEEDED
    account = account_of(samba_dc, username)
    uid = int(account["uidNumber"][0])
    assert uid == UNIX["uid_range_start"] + rid(account)
    assert str(account["unixHomeDirectory"][0]) == f"/home/{username}"
    # Another range later: the uid a person's files belong to stays.
    other = {**unix_for(username), "uid_range_start": 5000000, "uid_range_end": 5999999, "login_shell": "/bin/sh"}
    run(task_client, ApplyPolicy(username, ou="", groups=(), unix=other, **binding(username)))
    account = account_of(samba_dc, username)
    assert (int(account["uidNumber"][0]), str(account["loginShell"][0])) == (uid, "/bin/bash")
