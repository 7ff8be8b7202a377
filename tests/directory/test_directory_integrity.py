"""Nothing a person (or anyone but the worker) writes in the directory steers the worker (issue 22).

Against the real DC, broker and worker, with the credentials an attacker would
hold: the person's own password (an LDAPS simple bind, as any LDAP client
makes), or an administrator's who edits the binding line by hand.
"""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import time
import uuid

import ldap3
import ldb
import pytest
from es4ps_contract.events import REASON_DELETED, REASON_NOT_BOUND, REASON_NOT_FOUND, REASON_NOT_OURS, Outcome
from es4ps_contract.signing import sign_envelope
from es4ps_contract.tasks import ApplyPolicy, DeleteUser, DisableUser, EnableUser, UpdateAttributes
from es4ps_localcluster.processes import wait_until
from es4ps_testkit.samba import find_account, ldap_session, password_authenticates
from es4ps_testkit.tasks import PASSWORD, binding, create_task, run
from es4ps_testkit.worker import DirectoryWorker
from samba.dsdb import UF_ACCOUNTDISABLE

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("directory_worker")]

BINDING_ATTRIBUTE = "adminDescription"
# Every mark raised as far as it goes: what the person wrote in the reported attack.
RAISED = "state=9999999999/x password=9999999999/x attributes=9999999999/x policy=9999999999/x"
# The attributes the worker relies on: the binding line (and where it lived before), the lookup name, the
# state, the address a create with proof compares, the Unix ids it never changes once set.
RELIED_ON = {
    BINDING_ATTRIBUTE: "es4ps registration={registration} " + RAISED,
    "sAMAccountName": "someone-else",
    "userAccountControl": "512",
    "mail": "attacker@elsewhere.example",
    "userPrincipalName": "someone-else@es4ps.test",
    "uidNumber": "0",
    "gidNumber": "0",
}


def attrs_of(samba_dc, username: str) -> dict[str, str]:
    account = find_account(samba_dc, username, attrs=[*RELIED_ON, "info", "memberOf"])
    return {str(name): str(account[name][0]) for name in account if name != "dn"}


def disabled(samba_dc, username: str) -> bool:
    return bool(int(find_account(samba_dc, username)["userAccountControl"][0]) & UF_ACCOUNTDISABLE)


def write_as_administrator(samba_dc, username: str, attribute: str, value: str | None) -> None:
    """Replace the attribute's value (None: remove it), as a domain administrator can."""
    account = find_account(samba_dc, username, attrs=["cn"])
    message = ldb.Message(account.dn)
    message[attribute] = ldb.MessageElement([] if value is None else [value.encode()], ldb.FLAG_MOD_REPLACE, attribute)
    samba_dc.samdb().modify(message)


def test_a_person_cannot_write_what_the_worker_relies_on_and_staff_disable_and_move_still_apply(
    task_client, samba_dc, username
):
    mine = binding(username)
    assert run(task_client, create_task(task_client, username)).outcome is Outcome.SUCCEEDED
    assert run(task_client, EnableUser(username, **mine)).outcome is Outcome.SUCCEEDED
    before = attrs_of(samba_dc, username)

    person = ldap_session(samba_dc, username, PASSWORD)
    assert person.bind()
    dn = str(find_account(samba_dc, username, attrs=["cn"]).dn)
    written = {}
    for attribute, value in RELIED_ON.items():
        value = value.format(registration=mine["registration"])
        written[attribute] = person.modify(dn, {attribute: [(ldap3.MODIFY_REPLACE, [value])]})
    # `info` is the person's to write (SELF's Personal-Information): the line that lived there orders nothing now.
    assert person.modify(
        dn, {"info": [(ldap3.MODIFY_REPLACE, [f"es4ps registration={mine['registration']} {RAISED}"])]}
    )
    person.unbind()

    assert written == dict.fromkeys(RELIED_ON, False)
    after = attrs_of(samba_dc, username)
    assert {k: v for k, v in after.items() if k != "info"} == {k: v for k, v in before.items() if k != "info"}

    disable = run(task_client, DisableUser(username, **mine))
    assert (disable.outcome, disable.reason) == (Outcome.SUCCEEDED, "")
    assert disabled(samba_dc, username)
    assert not password_authenticates(samba_dc, username, PASSWORD)  # the person's bind fails

    moved = run(task_client, ApplyPolicy(username, ou=f"Moved {username}", groups=(f"g-{username}",), **mine))
    assert (moved.outcome, moved.reason) == (Outcome.SUCCEEDED, "")
    account = find_account(samba_dc, username, attrs=["memberOf"])
    assert str(account.dn).lower().startswith(f"cn={username},ou=moved {username},ou=es4ps,".lower())
    assert [str(g).split(",")[0].lower() for g in account["memberOf"]] == [f"cn=g-{username}"]


def test_a_line_an_administrator_edits_orders_nothing_and_blocks_no_staff_action(task_client, samba_dc, username):
    mine = binding(username)
    run(task_client, create_task(task_client, username))
    run(task_client, EnableUser(username, **mine))
    # Raised marks, junk numbers (a non-ASCII digit, a huge one), another registration, and no valid MAC.
    forged = f"es4ps registration={uuid.uuid4()} state=²/x password=99999999999999999999/y {RAISED} mac=AAAA"
    write_as_administrator(samba_dc, username, BINDING_ATTRIBUTE, forged)

    # A task of the person's own kind needs the line to name its registration: it does not.
    update = run(task_client, UpdateAttributes(username, attributes={"given_name": "Mallory"}, **mine))
    assert (update.outcome, update.reason) == (Outcome.FAILED, REASON_NOT_OURS)
    # Staff's disable applies whatever the line says, and writes an authentic line again.
    disable = run(task_client, DisableUser(username, **mine))
    assert (disable.outcome, disable.reason) == (Outcome.SUCCEEDED, "")
    assert disabled(samba_dc, username)
    line = attrs_of(samba_dc, username)[BINDING_ATTRIBUTE]
    assert line.startswith(f"es4ps registration={mine['registration']} ") and " mac=" in line
    assert run(task_client, EnableUser(username, **mine)).outcome is Outcome.SUCCEEDED
    assert password_authenticates(samba_dc, username, PASSWORD)


def test_a_line_of_an_earlier_version_in_info_orders_nothing_and_moves_to_its_place(task_client, samba_dc, username):
    mine = binding(username)
    run(task_client, create_task(task_client, username))
    # As an earlier version left it (and as the person could rewrite it): in `info`, without a MAC.
    write_as_administrator(samba_dc, username, BINDING_ATTRIBUTE, None)
    write_as_administrator(samba_dc, username, "info", f"es4ps registration={mine['registration']} {RAISED}")

    enable = run(task_client, EnableUser(username, **mine))

    assert (enable.outcome, enable.reason) == (Outcome.SUCCEEDED, "")
    assert not disabled(samba_dc, username)
    now = attrs_of(samba_dc, username)
    assert "info" not in now and now[BINDING_ATTRIBUTE].startswith(f"es4ps registration={mine['registration']} ")


def test_an_unbound_account_with_the_address_is_never_deleted_and_taken_on_only_after_proof(
    task_client, samba_dc, username
):
    # An account the product never bound (an earlier version's, or staff's), in the OU, with the address.
    samba_dc.samdb().newuser(
        username, "Legacy-Passw0rd!", userou="OU=ES4PS", mailaddress=f"{username}@acme.example", setpassword=True
    )
    # Someone who knows the name and the address registers them, never proves the address; expiry deletes it.
    outsider = binding(username, registration=str(uuid.uuid4()))
    unproven = run(task_client, create_task(task_client, username, **outsider))
    enable = run(task_client, EnableUser(username, **outsider))
    delete = run(task_client, DeleteUser(username, **outsider))
    mine = binding(username)
    other_address = run(task_client, create_task(task_client, username, address_proven=True, email="x@acme.example"))

    assert [(e.outcome, e.reason) for e in (unproven, enable, delete, other_address)] == [
        (Outcome.FAILED, "the username is already taken"),
        (Outcome.FAILED, REASON_NOT_BOUND),
        (Outcome.FAILED, REASON_NOT_BOUND),
        (Outcome.FAILED, "the username is already taken"),
    ]
    assert find_account(samba_dc, username) is not None
    assert password_authenticates(samba_dc, username, "Legacy-Passw0rd!")

    # The create the portal sends once the person proved the address: the account is theirs, with their password.
    proven = run(task_client, create_task(task_client, username, address_proven=True))
    assert (proven.outcome, proven.reason) == (Outcome.SUCCEEDED, "")
    assert attrs_of(samba_dc, username)[BINDING_ATTRIBUTE].startswith(f"es4ps registration={mine['registration']} ")
    assert password_authenticates(samba_dc, username, PASSWORD)
    assert not password_authenticates(samba_dc, username, "Legacy-Passw0rd!")


def test_an_account_outside_the_managed_ou_with_the_address_and_no_binding_is_not_found(
    task_client, samba_dc, username
):
    samba_dc.samdb().newuser(username, "Staff-Passw0rd!1", mailaddress=f"{username}@acme.example", setpassword=True)

    event = run(task_client, UpdateAttributes(username, attributes={"given_name": "Mallory"}, **binding(username)))

    assert (event.outcome, event.reason) == (Outcome.FAILED, REASON_NOT_FOUND)
    account = find_account(samba_dc, username, attrs=["givenName", BINDING_ATTRIBUTE, "info"])
    assert {str(name) for name in account if name != "dn"} == set()  # nothing written


def test_a_deleted_registration_is_never_created_again_even_by_a_create_that_comes_late(
    task_client, samba_dc, username
):
    mine = binding(username)
    late_create = create_task(task_client, username)
    late_id = str(uuid.uuid4())
    late_envelope = task_client.envelope(late_create, late_id)  # signed before the delete, held back

    assert run(task_client, DeleteUser(username, **mine)).outcome is Outcome.SUCCEEDED  # nothing to delete yet
    task_client.publish(late_create.operation, late_envelope, late_id)

    assert (task_client.wait_for(late_id).outcome, task_client.results[late_id].reason) == (
        Outcome.FAILED,
        REASON_DELETED,
    )
    assert find_account(samba_dc, username) is None


def test_a_create_replayed_after_a_move_gives_no_old_group_back(task_client, samba_dc, username):
    mine = binding(username)
    create = create_task(task_client, username, groups=(f"old-{username}",))
    captured = task_client.envelope(create, str(uuid.uuid4()))
    task_client.publish(create.operation, captured, captured["id"])
    assert task_client.wait_for(captured["id"]).outcome is Outcome.SUCCEEDED
    time.sleep(1.1)  # issue times are whole seconds
    assert (
        run(task_client, ApplyPolicy(username, ou="", groups=(f"new-{username}",), **mine)).outcome is Outcome.SUCCEEDED
    )

    # The captured create, as a DC whose record of applied tasks never saw it would take it (another id).
    replay_id = str(uuid.uuid4())
    replay = sign_envelope(task_client.signing_key, create.operation, replay_id, captured["payload"], captured["iat"])
    task_client.publish(create.operation, replay, replay_id)

    assert task_client.wait_for(replay_id).outcome is Outcome.SUCCEEDED  # the account exists: nothing to do
    groups = find_account(samba_dc, username, attrs=["memberOf"])["memberOf"]
    assert [str(g).split(",")[0].lower() for g in groups] == [f"cn=new-{username}"]


def test_captured_tasks_published_again_after_a_delete_bring_nothing_back_on_a_dc_that_never_saw_them(
    tmp_path, task_client, samba_dc, directory_worker, worker_env, contract_keys, second_dc, username
):
    mine = binding(username)
    tasks = [create_task(task_client, username), EnableUser(username, **mine), DeleteUser(username, **mine)]
    captured = []
    for task in tasks:  # applied by the first DC's worker, each envelope captured on its way
        task_id = str(uuid.uuid4())
        envelope = task_client.envelope(task, task_id)
        task_client.publish(task.operation, envelope, task_id)
        assert task_client.wait_for(task_id).outcome is Outcome.SUCCEEDED
        captured.append((task, task_id, envelope))
    assert find_account(samba_dc, username) is None
    # Everything up to the delete reached the second DC (its worker's record of applied tasks is empty): a
    # marker written on the first DC after it has replicated, and replication keeps the order of changes.
    marker = f"OU=replicated-{username},{samba_dc.base_dn}"
    samba_dc.samdb().add({"dn": marker, "objectClass": "organizationalUnit"})
    wait_until(
        lambda: second_dc.samdb().search(samba_dc.base_dn, expression=f"(ou=replicated-{username})"),
        300,  # the DCs pull every 15 s; on a loaded machine it takes longer
        "the first DC's changes replicated to dc2",
    )

    directory_worker.stop()
    replayer = DirectoryWorker(
        tmp_path / "dc2-worker",
        {
            **worker_env,
            **second_dc.worker_env,
            **contract_keys.result_env("dc2"),
            "ES4PS_WORKER_STATE_DIR": str(tmp_path / "dc2-state"),
        },
        name="dc2",
    )
    (tmp_path / "dc2-state").mkdir()
    replayer.start()
    try:
        replayed = []
        for task, task_id, envelope in captured:  # the same messages, published again, one after the other
            task_client.results.pop(task_id)
            task_client.publish(task.operation, envelope, task_id)
            replayed.append(task_client.wait_for(task_id, timeout_s=120))
            assert find_account(second_dc, username) is None  # after the create, after the enable: nothing
    finally:
        replayer.stop()
        directory_worker.start()

    assert [(e.worker, e.outcome, e.reason) for e in replayed] == [
        ("dc2", Outcome.FAILED, REASON_DELETED),
        ("dc2", Outcome.FAILED, REASON_NOT_FOUND),
        ("dc2", Outcome.SUCCEEDED, ""),
    ]
    assert find_account(samba_dc, username) is None
