"""Recording the workers' result events: idempotent, in order, and robust against junk."""

from __future__ import annotations

import uuid

import pytest
from es4ps_contract.events import Outcome, ResultEvent
from es4ps_contract.tasks import Operation
from es4ps_portal.accounts.models import User
from es4ps_portal.provisioning.models import ProvisioningTask
from es4ps_portal.provisioning.results import record_result_event
from es4ps_portal.provisioning.tasks import record_result
from es4ps_portal.web.status import account_status

pytestmark = pytest.mark.django_db


@pytest.fixture
def person() -> User:
    user = User.objects.create(username="ada", email="ada@acme.example", directory_state=User.DirectoryState.PENDING)
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
    person.email_verified_at = person.date_joined
    person.save()
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
def test_a_failed_create_shows_its_reason(person, outcome):
    task = queued(person, Operation.CREATE_USER)
    record_result_event(event(task, outcome, "the OU Staff was not found (retries exhausted)"))
    status = account_status(person)
    assert (status["state"], status["can_withdraw"]) == ("failed", False)
    assert status["message"] == "Setting up your account failed: the OU Staff was not found (retries exhausted)"
    assert status["tasks"][-1]["state"] == "failed"


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


def test_the_consumer_task_records_a_well_formed_message(person):
    task = queued(person, Operation.CREATE_USER)
    record_result.run(event(task, Outcome.SUCCEEDED).to_message())
    task.refresh_from_db()
    assert task.state == ProvisioningTask.State.DONE
