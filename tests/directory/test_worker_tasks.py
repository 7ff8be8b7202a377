"""The worker applies each task to the real DC, idempotently, and reports every outcome."""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import uuid

import pytest
from es4ps_contract.events import Outcome
from es4ps_contract.passwords import PASSWORD_REFUSED_REASON
from es4ps_contract.tasks import (
    DeleteUser,
    DisableUser,
    EnableUser,
    SetPassword,
    UpdateAttributes,
)
from es4ps_testkit.samba import find_account, password_authenticates
from es4ps_testkit.tasks import PASSWORD, binding, create_task, run
from samba.dsdb import UF_ACCOUNTDISABLE

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("directory_worker")]


def test_a_created_account_is_disabled_and_its_password_does_not_authenticate(task_client, samba_dc, username):
    event = run(task_client, create_task(task_client, username))

    assert (event.outcome, event.operation, event.username, event.reason) == (
        Outcome.SUCCEEDED,
        "create_user",
        username,
        "",
    )
    account = find_account(samba_dc, username)
    assert account is not None
    assert int(account["userAccountControl"][0]) & UF_ACCOUNTDISABLE
    assert str(account["userPrincipalName"][0]) == f"{username}@{samba_dc.dns_domain}"
    assert str(account["mail"][0]) == f"{username}@acme.example"
    assert not password_authenticates(samba_dc, username, PASSWORD)


def test_after_enable_the_chosen_password_authenticates_and_a_wrong_one_does_not(task_client, samba_dc, username):
    assert run(task_client, create_task(task_client, username)).outcome is Outcome.SUCCEEDED

    event = run(task_client, EnableUser(username, **binding(username)))

    assert event.outcome is Outcome.SUCCEEDED
    assert not int(find_account(samba_dc, username)["userAccountControl"][0]) & UF_ACCOUNTDISABLE
    assert password_authenticates(samba_dc, username, PASSWORD)
    assert not password_authenticates(samba_dc, username, PASSWORD + "x")


def test_disable_stops_the_password_from_authenticating(task_client, samba_dc, username):
    run(task_client, create_task(task_client, username))
    run(task_client, EnableUser(username, **binding(username)))

    assert run(task_client, DisableUser(username, **binding(username))).outcome is Outcome.SUCCEEDED

    assert not password_authenticates(samba_dc, username, PASSWORD)
    assert (
        run(task_client, DisableUser(username, **binding(username))).outcome is Outcome.SUCCEEDED
    )  # already disabled: fine


def test_set_password_changes_what_authenticates(task_client, samba_dc, username):
    run(task_client, create_task(task_client, username))
    run(task_client, EnableUser(username, **binding(username)))
    new_password = "An0ther-Secret+phrase"

    event = run(
        task_client,
        SetPassword(username, sealed_password=task_client.seal(username, new_password), **binding(username)),
    )

    assert event.outcome is Outcome.SUCCEEDED
    assert password_authenticates(samba_dc, username, new_password)
    assert not password_authenticates(samba_dc, username, PASSWORD)


def test_a_password_the_domain_refuses_fails_with_the_reason_and_nothing_is_created(task_client, samba_dc, username):
    # 13 characters of every kind: only the length breaks the domain's policy (minLength 14, the default).
    event = run(task_client, create_task(task_client, username, password="Sh0rt-but-Ok!"))

    assert event.outcome is Outcome.FAILED
    assert event.reason == PASSWORD_REFUSED_REASON
    assert find_account(samba_dc, username) is None


def test_a_long_password_of_plain_words_is_accepted_without_complexity(task_client, samba_dc, username):
    event = run(task_client, create_task(task_client, username, password="all lower case words"))

    assert event.outcome is Outcome.SUCCEEDED


def test_updated_attributes_are_visible_in_the_directory(task_client, samba_dc, username):
    run(task_client, create_task(task_client, username))
    attributes = {"given_name": "Zoë", "surname": "Ünal-Ñúñez", "display_name": "Zoë Ünal-Ñúñez (Physics)"}

    event = run(task_client, UpdateAttributes(username, attributes=attributes, **binding(username)))

    assert event.outcome is Outcome.SUCCEEDED
    account = find_account(samba_dc, username)
    assert str(account["givenName"][0]) == "Zoë"
    assert str(account["sn"][0]) == "Ünal-Ñúñez"
    assert str(account["displayName"][0]) == "Zoë Ünal-Ñúñez (Physics)"


def test_delete_removes_the_account_and_a_second_delete_succeeds(task_client, samba_dc, username):
    run(task_client, create_task(task_client, username))

    assert run(task_client, DeleteUser(username, **binding(username))).outcome is Outcome.SUCCEEDED
    assert find_account(samba_dc, username) is None
    assert run(task_client, DeleteUser(username, **binding(username))).outcome is Outcome.SUCCEEDED


def test_a_redelivered_task_is_harmless(task_client, samba_dc, username):
    task = create_task(task_client, username)
    task_id = task_client.submit(task)
    assert task_client.wait_for(task_id).outcome is Outcome.SUCCEEDED
    run(task_client, EnableUser(username, **binding(username)))

    # The very same message (same envelope, same task id) arrives again, as after a lost ack.
    task_client.results.pop(task_id)
    task_client.publish(task.operation, task_client.envelope(task, task_id), task_id)
    again = task_client.wait_for(task_id)

    assert again.outcome is Outcome.SUCCEEDED
    account = find_account(samba_dc, username)
    assert not int(account["userAccountControl"][0]) & UF_ACCOUNTDISABLE  # still enabled: create changed nothing
    assert password_authenticates(samba_dc, username, PASSWORD)
    assert (
        run(task_client, EnableUser(username, **binding(username))).outcome is Outcome.SUCCEEDED
    )  # enable of an enabled account


def test_create_of_a_name_taken_by_another_person_fails_and_leaves_that_account_alone(task_client, samba_dc, username):
    run(task_client, create_task(task_client, username))

    another_registration = binding(username, registration=str(uuid.uuid4())) | {"email": "someone@else.example"}
    event = run(task_client, create_task(task_client, username, password="0ther-Pers0n!pass", **another_registration))

    assert event.outcome is Outcome.FAILED
    assert event.reason == "the username is already taken"
    assert str(find_account(samba_dc, username)["mail"][0]) == f"{username}@acme.example"


def test_accounts_outside_the_managed_container_are_never_touched(task_client, samba_dc, username):
    # A staff account made by hand in CN=Users, disabled on purpose.
    samba_dc.samdb().newuser(username, "Staff-Passw0rd!", setpassword=True)
    samba_dc.samdb().disable_account(f"(sAMAccountName={username})")

    enable = run(task_client, EnableUser(username, **binding(username)), timeout_s=120)
    create_event = run(task_client, create_task(task_client, username))

    assert create_event.outcome is Outcome.FAILED and create_event.reason == "the username is already taken"
    assert enable.outcome is Outcome.FAILED
    assert int(find_account(samba_dc, username)["userAccountControl"][0]) & UF_ACCOUNTDISABLE


def test_enable_before_the_account_exists_is_retried_until_it_does(task_client, samba_dc, directory_worker, username):
    # As when the account has not replicated to this DC yet: the enable (issued after the create, as the
    # portal does) reaches the worker first and waits for it. Signed in that order: an enable issued
    # before its create would rightly be superseded by the create's marks.
    create = create_task(task_client, username)
    create_id = str(uuid.uuid4())
    create_envelope = task_client.envelope(create, create_id)
    enable_id = task_client.submit(EnableUser(username, **binding(username)))
    directory_worker.wait_for_log(f"{enable_id}", timeout_s=30)
    directory_worker.wait_for_log("retry 1", timeout_s=30)
    task_client.publish(create.operation, create_envelope, create_id)
    assert task_client.wait_for(create_id).outcome is Outcome.SUCCEEDED

    assert task_client.wait_for(enable_id, 60).outcome is Outcome.SUCCEEDED
    assert password_authenticates(samba_dc, username, PASSWORD)
