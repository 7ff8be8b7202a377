"""Recording the workers' result events: idempotent, in order, and robust against junk."""

from __future__ import annotations

import base64
import dataclasses
import uuid

import pytest
from django.utils import timezone
from es4ps_contract.events import REASON_SUPERSEDED, Outcome, ResultEvent, sign_event
from es4ps_contract.keys import generate_signing_keypair
from es4ps_contract.tasks import Operation
from es4ps_portal.accounts.models import User
from es4ps_portal.provisioning.models import ProvisioningTask
from es4ps_portal.provisioning.results import record_result_event
from es4ps_portal.provisioning.tasks import _load_result_keys, record_result
from es4ps_portal.web.status import account_status
from nacl.signing import SigningKey
from prometheus_client import REGISTRY

pytestmark = pytest.mark.django_db


@pytest.fixture
def person() -> User:
    """A confirmed registration (its create is released at confirmation)."""
    user = User.objects.create(
        username="ada",
        email="ada@acme.example",
        directory_state=User.DirectoryState.PENDING,
        email_verified_at=timezone.now(),
    )
    user.set_unusable_password()
    return user


def queued(user: User, operation: Operation) -> ProvisioningTask:
    return ProvisioningTask.objects.create(task_id=uuid.uuid4(), user=user, operation=operation.value)


def event(task: ProvisioningTask, outcome: Outcome, reason: str = "", finished_at: float = 1_800_000_000.0):
    return ResultEvent(str(task.task_id), task.operation, task.user.username, outcome, reason, "dc1", finished_at)


def state_of(user: User) -> str:
    user.refresh_from_db()
    return user.directory_state


def test_a_success_is_recorded_once(person):
    task = queued(person, Operation.CREATE_USER)
    assert record_result_event(event(task, Outcome.SUCCEEDED))
    task.refresh_from_db()
    assert (task.state, task.worker) == (ProvisioningTask.State.DONE, "dc1")
    assert state_of(person) == User.DirectoryState.CREATED
    # The same event delivered again changes nothing.
    assert not record_result_event(event(task, Outcome.SUCCEEDED))


def test_enable_after_create_makes_the_account_ready(person):
    create, enable = queued(person, Operation.CREATE_USER), queued(person, Operation.ENABLE_USER)
    record_result_event(event(create, Outcome.SUCCEEDED))
    assert account_status(person)["state"] == "in_progress"
    record_result_event(event(enable, Outcome.SUCCEEDED))
    assert account_status(person)["state"] == "ready"


def test_a_late_create_result_does_not_undo_enabled(person):
    create, enable = queued(person, Operation.CREATE_USER), queued(person, Operation.ENABLE_USER)
    record_result_event(event(enable, Outcome.SUCCEEDED))
    record_result_event(event(create, Outcome.SUCCEEDED))
    assert state_of(person) == User.DirectoryState.ENABLED


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.REJECTED])
def test_a_failed_create_shows_its_reason_once_the_address_is_confirmed(person, outcome):
    task = queued(person, Operation.CREATE_USER)
    record_result_event(event(task, outcome, "the OU Staff was not found (retries exhausted)"))
    status = account_status(person)
    assert (status["state"], status["can_withdraw"]) == ("failed", False)
    assert status["message"] == "Setting up your account failed: the OU Staff was not found (retries exhausted)"
    assert status["tasks"][-1]["state"] == "failed"


def test_an_unconfirmed_registration_shows_nothing_but_confirm_your_address(person):
    # Its held create is not shown: the page of a registration is that of a name or an address that was taken.
    User.objects.filter(pk=person.pk).update(email_verified_at=None)
    queued(person, Operation.CREATE_USER)
    status = account_status(person)
    assert (status["state"], status["username"], status["tasks"]) == ("waiting_for_verification", "", [])


def test_a_name_the_directory_holds_says_what_to_do(person):
    task = queued(person, Operation.CREATE_USER)
    record_result_event(event(task, Outcome.FAILED, "the username is already taken"))
    status = account_status(person)
    assert (status["state"], status["can_withdraw"]) == ("name_taken", True)
    assert status["message"] == (
        f"The username {person.username} is already used in the directory, so your account could not be created."
        " Withdraw this registration below, then register again with another username."
    )
    assert (status["tasks"][-1]["state"], status["tasks"][-1]["reason"]) == ("failed", "the username is already taken")


def test_a_failed_password_change_is_shown_but_keeps_the_account_enabled(person):
    person.directory_state = User.DirectoryState.ENABLED
    person.email_verified_at = timezone.now()
    person.save()
    task = queued(person, Operation.SET_PASSWORD)
    record_result_event(event(task, Outcome.FAILED, "password does not meet the domain's complexity rules"))
    assert state_of(person) == User.DirectoryState.ENABLED
    assert account_status(person)["tasks"][-1]["reason"] == "password does not meet the domain's complexity rules"


def test_a_newer_result_wins_and_an_older_one_is_ignored(person):
    task = queued(person, Operation.CREATE_USER)
    record_result_event(event(task, Outcome.FAILED, "directory unavailable", finished_at=1_800_000_000.0))
    # Redelivered after a worker crash and then applied: the newer success counts ...
    assert record_result_event(event(task, Outcome.SUCCEEDED, finished_at=1_800_000_100.0))
    # ... and an older event arriving late does not undo it.
    assert not record_result_event(event(task, Outcome.FAILED, "late", finished_at=1_800_000_050.0))
    task.refresh_from_db()
    assert task.state == ProvisioningTask.State.DONE
    assert state_of(person) == User.DirectoryState.CREATED


def test_events_for_unknown_tasks_or_other_users_are_ignored(person):
    task = queued(person, Operation.CREATE_USER)
    assert not record_result_event(ResultEvent("not-a-uuid", "create_user", "ada", Outcome.SUCCEEDED))
    assert not record_result_event(ResultEvent(str(uuid.uuid4()), "create_user", "ada", Outcome.SUCCEEDED))
    assert not record_result_event(ResultEvent(str(task.task_id), "create_user", "mallory", Outcome.SUCCEEDED))
    assert not record_result_event(ResultEvent(str(task.task_id), "delete_user", "ada", Outcome.SUCCEEDED))
    task.refresh_from_db()
    assert task.state == ProvisioningTask.State.QUEUED


@pytest.mark.parametrize(
    "message", [None, "junk", {}, {"task_id": "x", "operation": "create_user", "outcome": "maybe"}]
)
def test_the_consumer_task_drops_malformed_messages(message):
    assert record_result.run(message) is None


@pytest.fixture
def dc1_key(settings, tmp_path) -> SigningKey:
    """DC dc1's result key; the portal holds its public half (ES4PS_RESULT_KEYS_DIR)."""
    private, public = generate_signing_keypair()
    (tmp_path / "dc1.key").write_text(public)
    settings.RESULT_KEYS_DIR = str(tmp_path)
    _load_result_keys.cache_clear()
    yield load_signing_key_text(private)
    _load_result_keys.cache_clear()


def load_signing_key_text(text: str) -> SigningKey:
    return SigningKey(base64.b64decode(text))


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("es4ps_portal_task_results_dropped_total", {"reason": reason}) or 0.0


def test_the_consumer_task_records_a_message_signed_by_a_dc(person, dc1_key):
    task = queued(person, Operation.CREATE_USER)
    record_result.run(sign_event(dc1_key, event(task, Outcome.SUCCEEDED)))
    task.refresh_from_db()
    assert task.state == ProvisioningTask.State.DONE


def test_a_forged_deleted_changes_nothing_and_is_counted(person, dc1_key):
    """Whoever holds a worker's broker certificate can write to the results queue: unsigned, signed with a key of
    their own, or signed by DC dc1 but altered, a "deleted" is dropped and counted; the person stays."""
    person.directory_state = User.DirectoryState.ENABLED
    person.save()
    delete = queued(person, Operation.DELETE_USER)
    deleted = event(delete, Outcome.SUCCEEDED)
    genuine_failure = sign_event(dc1_key, event(delete, Outcome.FAILED, "the account belongs to another registration"))
    before = {reason: dropped(reason) for reason in ("unsigned", "bad_signature", "unknown_worker")}

    record_result.run(deleted.to_message())  # unsigned
    record_result.run(sign_event(SigningKey.generate(), deleted))  # signed with another key, naming dc1
    record_result.run({**genuine_failure, "outcome": "succeeded", "reason": ""})  # dc1's event, altered
    record_result.run(sign_event(SigningKey.generate(), dataclasses.replace(deleted, worker="dc9")))  # no such DC

    assert User.objects.filter(pk=person.pk).exists()
    delete.refresh_from_db()
    assert (delete.state, delete.worker) == (ProvisioningTask.State.QUEUED, "")
    assert state_of(person) == User.DirectoryState.ENABLED
    assert [dropped(reason) - before[reason] for reason in before] == [1, 2, 1]


def test_a_task_the_worker_did_not_apply_is_shown_not_applied_with_the_reason_never_done(person):
    person.directory_state = User.DirectoryState.ENABLED
    person.save()
    disable = queued(person, Operation.DISABLE_USER)

    assert record_result_event(event(disable, Outcome.NOT_APPLIED, REASON_SUPERSEDED))

    disable.refresh_from_db()
    assert (disable.state, disable.reason) == (ProvisioningTask.State.NOT_APPLIED, REASON_SUPERSEDED)
    assert state_of(person) == User.DirectoryState.ENABLED  # nothing changed in the directory
    shown = account_status(person)["tasks"][-1]
    assert (shown["state"], shown["state_label"], shown["reason"]) == (
        "not_applied",
        "not applied",
        "superseded by a newer change",
    )
