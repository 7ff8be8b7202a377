"""The worker's task life (open, look up, apply, retry, record, report) with a stand-in directory and broker.

The record of applied tasks is the real one (SQLite in a temporary directory).
"""
# ruff: noqa: S105, S106 - test values

from __future__ import annotations

from types import SimpleNamespace

import pytest
from celery.app.task import Context
from es4ps_contract.events import (
    REASON_SUPERSEDED,
    REASON_WORKER_ERROR,
    EventSignatureError,
    Outcome,
    ResultEvent,
    open_event,
)
from es4ps_contract.passwords import PASSWORD_REFUSED_REASON
from es4ps_contract.sealing import seal_password
from es4ps_contract.signing import sign_task
from es4ps_contract.tasks import RESULT_TASK_NAME, RESULTS_QUEUE, CreateUser, EnableUser, Operation
from es4ps_samba.worker.applied import AppliedTasks
from es4ps_samba.worker.binding import SUPERSEDED
from es4ps_samba.worker.config import WorkerConfig
from es4ps_samba.worker.errors import DirectoryRefused, DirectoryUnavailable, NotFoundYet
from es4ps_samba.worker.handler import MISSING_RETRIES, PEER_WAIT_RETRIES, ProvisioningWorker
from es4ps_samba.worker.metrics import WorkerMetrics
from nacl.public import PrivateKey
from nacl.signing import SigningKey
from prometheus_client import CollectorRegistry

PASSWORD = "Corr3ct-Horse!"


class Retry(Exception):
    pass


class FakeCeleryTask:
    def __init__(self, task_id: str, retries: int = 0, redelivered: bool = False, missing_retries=None) -> None:
        """`missing_retries`: the retries that found the account missing (the message's header; None: none)."""
        headers = {} if missing_retries is None else {MISSING_RETRIES: missing_retries}
        self.request = Context(
            id=task_id, retries=retries, delivery_info={"redelivered": redelivered}, headers=headers, **headers
        )
        self.retried_with: dict | None = None

    def retry(self, **options):
        self.retried_with = options
        return Retry()


class FakeApp:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list, str]] = []

    def send_task(self, name, args, queue):
        self.sent.append((name, args, queue))


class FakeDirectory:
    def __init__(self, error: Exception | None = None, done: str = "done") -> None:
        self.calls: list[tuple] = []
        self.error = error
        self.done = done

    def __getattr__(self, name):
        def operation(*args):
            self.calls.append((name, *args))
            if self.error:
                raise self.error
            return self.done

        return operation


@pytest.fixture
def keys():
    return SimpleNamespace(sealing=PrivateKey.generate(), signing=SigningKey.generate(), result=SigningKey.generate())


BOUND = {"registration": "0b7c5e6e-3f4a-4c1e-9d2b-8a6f5e4d3c2b", "email": "ana@acme.example"}


@pytest.fixture
def make_worker(keys, tmp_path):
    def make(directory, max_retries=3):
        config = WorkerConfig(
            ldap_url="ldap://127.0.0.1",
            ldap_ca_file="",
            realm="ES4PS.TEST",
            netbios_name="ES4PS",
            account="es4ps-worker",
            password="x",
            users_ou="OU=ES4PS",
            creates_containers=True,
            state_dir=tmp_path,
            worker_name="dc0",
            max_retries=max_retries,
            concurrency=1,
            sealing_key=keys.sealing,
            verify_key=keys.signing.verify_key,
            result_key=keys.result,
            metrics_port=0,
            metrics_address="127.0.0.1",
        )
        registry = CollectorRegistry()
        worker = ProvisioningWorker(FakeApp(), config, directory, AppliedTasks(tmp_path), WorkerMetrics(registry))
        worker.registry = registry  # for `counted`
        worker.result_keys = {"dc0": keys.result.verify_key}  # what the portal holds
        return worker

    return make


def create_envelope(keys, task_id="id-1", username="ana", sealed_for=None):
    sealed = seal_password(keys.sealing.public_key, sealed_for or username, PASSWORD)
    task = CreateUser(username, given_name="Ana", surname="Lopez", sealed_password=sealed, **BOUND)
    return sign_task(keys.signing, task, task_id)


def enable_envelope(keys, task_id="id-1"):
    return sign_task(keys.signing, EnableUser("ana", **BOUND), task_id)


def counted(worker, name: str, **labels: str) -> float:
    """A sample of the worker's metrics (0 when it was never counted)."""
    return worker.registry.get_sample_value(name, labels) or 0.0


def only_event(worker) -> ResultEvent:
    """The one event the worker sent, as the portal opens it (its signature verified with the DC's key)."""
    [(name, args, queue)] = worker.app.sent
    assert (name, queue) == (RESULT_TASK_NAME, RESULTS_QUEUE)
    return open_event(worker.result_keys, args[0])


def test_a_valid_task_reaches_the_directory_with_the_opened_password_and_is_reported(keys, make_worker):
    directory = FakeDirectory()
    worker = make_worker(directory)

    worker.handle(FakeCeleryTask("id-1"), Operation.CREATE_USER, create_envelope(keys))

    [(name, signed, password, must_answer)] = directory.calls
    assert (name, signed.task.username, signed.task.registration, signed.task_id, password, must_answer) == (
        "create_user",
        "ana",
        BOUND["registration"],
        "id-1",
        PASSWORD,
        False,  # a first delivery: a DC that cannot be asked is left out
    )
    event = only_event(worker)
    assert (event.task_id, event.operation, event.username, event.outcome, event.worker) == (
        "id-1",
        "create_user",
        "ana",
        Outcome.SUCCEEDED,
        "dc0",
    )


@pytest.mark.parametrize(
    ("retries", "redelivered", "must_answer"),
    [
        (0, False, False),  # a first delivery: no other worker can have applied it
        (0, True, True),  # the broker delivers it again: another worker may have applied it
        (1, False, True),  # a retry: an earlier delivery may have reached another worker
        (PEER_WAIT_RETRIES - 1, True, True),
        (PEER_WAIT_RETRIES, True, False),  # waited long enough: a DC gone for good blocks nothing
    ],
)
def test_a_create_that_may_have_reached_another_worker_waits_a_while_for_every_dc_to_answer(
    keys, make_worker, retries, redelivered, must_answer
):
    directory = FakeDirectory()
    worker = make_worker(directory)

    worker.handle(FakeCeleryTask("id-1", retries, redelivered), Operation.CREATE_USER, create_envelope(keys))

    [(name, _signed, _password, asked)] = directory.calls
    assert (name, asked) == ("create_user", must_answer)


def test_a_bad_envelope_is_rejected_without_touching_the_directory(keys, make_worker):
    directory = FakeDirectory()
    worker = make_worker(directory)

    worker.handle(FakeCeleryTask("id-1"), Operation.CREATE_USER, create_envelope(keys, sealed_for="bob"))

    assert directory.calls == []
    event = only_event(worker)
    assert (event.outcome, event.username) == (Outcome.REJECTED, "ana")
    assert PASSWORD not in str(event.to_message())


@pytest.mark.parametrize("error", [NotFoundYet("not yet"), DirectoryUnavailable("down")])
def test_transient_errors_are_retried_with_growing_delays(keys, make_worker, error):
    worker = make_worker(FakeDirectory(error))
    envelope = enable_envelope(keys)
    delays = []
    for retries in range(3):
        # Each retry that found the account missing counted as such (ignored for an unavailable directory).
        celery_task = FakeCeleryTask("id-1", retries, missing_retries=retries)
        with pytest.raises(Retry):
            worker.handle(celery_task, Operation.ENABLE_USER, envelope)
        delays.append(celery_task.retried_with["countdown"])

    assert delays == [1, 2, 4]
    assert worker.app.sent == []  # no event while retrying


def test_when_retries_run_out_the_task_is_reported_failed(keys, make_worker):
    worker = make_worker(FakeDirectory(NotFoundYet("not yet")), max_retries=3)

    worker.handle(FakeCeleryTask("id-1", retries=3, missing_retries=3), Operation.ENABLE_USER, enable_envelope(keys))

    event = only_event(worker)
    assert (event.outcome, event.reason) == (Outcome.FAILED, "the account was not found (retries exhausted)")


@pytest.mark.parametrize("counted", [0, 2, -5, "3", True, None])
def test_waits_for_an_unavailable_directory_do_not_use_up_the_retries_of_a_missing_account(keys, make_worker, counted):
    """After an outage (40 retries while the directory was away) the enable may come back before the create that
    makes its account: it still gets its retries, counted from its first miss, 1 s apart at first. The count
    rides unsigned in the message: anything but a count below the limit counts as none (never as more retries)."""
    worker = make_worker(FakeDirectory(NotFoundYet("not yet")), max_retries=3)
    task = FakeCeleryTask("id-1", retries=40, missing_retries=counted)
    with pytest.raises(Retry):
        worker.handle(task, Operation.ENABLE_USER, enable_envelope(keys))
    missed_before = counted if counted == 2 else 0
    assert task.retried_with == {
        "countdown": 2**missed_before,
        "max_retries": None,
        "headers": {MISSING_RETRIES: missed_before + 1},
    }
    assert worker.app.sent == []


def test_a_refusal_is_final_and_carries_its_reason(keys, make_worker):
    worker = make_worker(FakeDirectory(DirectoryRefused(PASSWORD_REFUSED_REASON)))

    worker.handle(FakeCeleryTask("id-1"), Operation.CREATE_USER, create_envelope(keys))

    assert (only_event(worker).outcome, only_event(worker).reason) == (Outcome.FAILED, PASSWORD_REFUSED_REASON)


def test_a_task_applied_before_is_not_applied_again_and_its_outcome_is_reported_again(keys, make_worker):
    """A redelivery, or a captured task published again: the record of applied tasks answers, not the DC."""
    directory = FakeDirectory()
    first = make_worker(directory)
    first.handle(FakeCeleryTask("id-1"), Operation.ENABLE_USER, enable_envelope(keys))
    [original] = [open_event(first.result_keys, args[0]) for _name, args, _queue in first.app.sent]

    again = make_worker(directory)  # a restarted worker: the record is on the volume, not in memory
    again.handle(FakeCeleryTask("id-1"), Operation.ENABLE_USER, enable_envelope(keys))

    assert len(directory.calls) == 1
    assert only_event(again) == original  # the same event: the portal records nothing new


def test_an_unavailable_directory_delays_a_task_past_the_retry_limit_never_fails_it(keys, make_worker):
    worker = make_worker(FakeDirectory(DirectoryUnavailable("down")), max_retries=2)
    task = FakeCeleryTask("id-1", retries=40)
    with pytest.raises(Retry):
        worker.handle(task, Operation.ENABLE_USER, enable_envelope(keys))
    # Its count of retries that found the account missing stays as it was.
    assert task.retried_with == {"countdown": 60, "max_retries": None, "headers": {MISSING_RETRIES: 0}}
    assert worker.app.sent == []


def test_a_retried_task_is_not_recorded_until_it_is_final(keys, make_worker):
    worker = make_worker(FakeDirectory(DirectoryUnavailable("down")))
    with pytest.raises(Retry):
        worker.handle(FakeCeleryTask("id-1"), Operation.ENABLE_USER, enable_envelope(keys))

    healthy = FakeDirectory()
    make_worker(healthy).handle(FakeCeleryTask("id-1", retries=1), Operation.ENABLE_USER, enable_envelope(keys))
    assert [call[0] for call in healthy.calls] == ["enable_user"]


def test_every_attempt_and_outcome_is_counted(keys, make_worker):
    worker = make_worker(FakeDirectory())
    worker.handle(FakeCeleryTask("id-1"), Operation.CREATE_USER, create_envelope(keys))
    worker.handle(FakeCeleryTask("id-1"), Operation.CREATE_USER, create_envelope(keys))
    worker.handle(FakeCeleryTask("id-2"), Operation.CREATE_USER, create_envelope(keys, "id-2", sealed_for="bob"))

    create = {"operation": "create_user"}
    assert counted(worker, "es4ps_worker_tasks_total", **create, outcome="succeeded") == 1
    assert counted(worker, "es4ps_worker_tasks_total", **create, outcome="repeated") == 1
    assert counted(worker, "es4ps_worker_tasks_total", **create, outcome="rejected") == 1
    assert counted(worker, "es4ps_worker_task_duration_seconds_count", **create) == 3
    # The time from issue to outcome, only for the task applied (the envelope was signed just now).
    assert counted(worker, "es4ps_worker_publish_to_apply_seconds_count", **create) == 1
    assert counted(worker, "es4ps_worker_publish_to_apply_seconds_bucket", **create, le="2.0") == 1


def test_directory_errors_and_retries_are_counted(keys, make_worker):
    waiting = make_worker(FakeDirectory(DirectoryUnavailable("down")), max_retries=1)
    for retries in (0, 1, 5):
        with pytest.raises(Retry):
            waiting.handle(FakeCeleryTask("id-1", retries=retries), Operation.ENABLE_USER, enable_envelope(keys))
    enable = {"operation": "enable_user"}
    assert counted(waiting, "es4ps_worker_directory_errors_total", **enable, error="unavailable") == 3
    assert counted(waiting, "es4ps_worker_task_retries_total", **enable) == 3
    assert counted(waiting, "es4ps_worker_tasks_total", **enable, outcome="failed") == 0

    missing = make_worker(FakeDirectory(NotFoundYet("not there")), max_retries=1)
    missing.handle(FakeCeleryTask("id-3", 1, missing_retries=1), Operation.ENABLE_USER, enable_envelope(keys, "id-3"))
    assert counted(missing, "es4ps_worker_tasks_total", **enable, outcome="failed") == 1

    refused = make_worker(FakeDirectory(DirectoryRefused(PASSWORD_REFUSED_REASON)))
    refused.handle(FakeCeleryTask("id-2"), Operation.CREATE_USER, create_envelope(keys, "id-2"))
    create = {"operation": "create_user"}
    assert counted(refused, "es4ps_worker_directory_errors_total", **create, error="refused") == 1
    assert counted(refused, "es4ps_worker_tasks_total", **create, outcome="failed") == 1


def test_a_task_superseded_by_a_newer_change_is_reported_not_applied_never_done(keys, make_worker):
    worker = make_worker(FakeDirectory(done=SUPERSEDED))

    worker.handle(FakeCeleryTask("id-1"), Operation.ENABLE_USER, enable_envelope(keys))

    assert (only_event(worker).outcome, only_event(worker).reason) == (Outcome.NOT_APPLIED, REASON_SUPERSEDED)
    assert counted(worker, "es4ps_worker_tasks_total", operation="enable_user", outcome="not_applied") == 1


def test_an_unexpected_error_ends_the_task_as_failed_instead_of_leaving_it_queued(keys, make_worker):
    worker = make_worker(FakeDirectory(ValueError("invalid literal for int() with base 10: '²'")))

    worker.handle(FakeCeleryTask("id-1"), Operation.ENABLE_USER, enable_envelope(keys))

    assert (only_event(worker).outcome, only_event(worker).reason) == (Outcome.FAILED, REASON_WORKER_ERROR)
    again = make_worker(FakeDirectory())
    again.handle(FakeCeleryTask("id-1"), Operation.ENABLE_USER, enable_envelope(keys))
    assert only_event(again).outcome is Outcome.FAILED  # recorded: a redelivery reports it, never applies it


def test_result_events_are_signed_with_the_dcs_key_and_nothing_else_verifies(keys, make_worker):
    worker = make_worker(FakeDirectory())
    worker.handle(FakeCeleryTask("id-1"), Operation.ENABLE_USER, enable_envelope(keys))
    [(_name, [message], _queue)] = worker.app.sent

    assert open_event({"dc0": keys.result.verify_key}, message).outcome is Outcome.SUCCEEDED
    with pytest.raises(EventSignatureError):
        open_event({"dc0": SigningKey.generate().verify_key}, message)
    with pytest.raises(EventSignatureError):
        open_event({"dc0": keys.result.verify_key}, {**message, "outcome": "failed"})
