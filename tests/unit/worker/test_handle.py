"""The worker's task life (open, apply, retry, report) with a stand-in directory and broker."""
# ruff: noqa: S105, S106 - test values

from __future__ import annotations

from types import SimpleNamespace

import pytest
from es4ps_contract.events import Outcome, ResultEvent
from es4ps_contract.passwords import COMPLEXITY_REASON
from es4ps_contract.sealing import seal_password
from es4ps_contract.signing import sign_task
from es4ps_contract.tasks import RESULT_TASK_NAME, RESULTS_QUEUE, CreateUser, EnableUser, Operation
from es4ps_samba.directory import DirectoryRefused, DirectoryUnavailable, NotFoundYet
from es4ps_samba.worker import ProvisioningWorker, WorkerConfig
from nacl.public import PrivateKey
from nacl.signing import SigningKey

PASSWORD = "Corr3ct-Horse!"


class Retry(Exception):
    pass


class FakeCeleryTask:
    def __init__(self, task_id: str, retries: int = 0) -> None:
        self.request = SimpleNamespace(id=task_id, retries=retries)
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
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple] = []
        self.error = error

    def __getattr__(self, name):
        def operation(*args):
            self.calls.append((name, *args))
            if self.error:
                raise self.error
            return "done"

        return operation


@pytest.fixture
def keys():
    return SimpleNamespace(sealing=PrivateKey.generate(), signing=SigningKey.generate())


def make_worker(keys, directory, max_retries=3):
    config = WorkerConfig(
        ldap_url="ldap://127.0.0.1",
        realm="ES4PS.TEST",
        netbios_name="ES4PS",
        admin_password="x",
        users_ou="OU=ES4PS",
        worker_name="dc0",
        max_retries=max_retries,
        concurrency=1,
        sealing_key=keys.sealing,
        verify_key=keys.signing.verify_key,
    )
    return ProvisioningWorker(FakeApp(), config, directory)


def create_envelope(keys, task_id="id-1", username="ana", sealed_for=None):
    sealed = seal_password(keys.sealing.public_key, sealed_for or username, PASSWORD)
    return sign_task(keys.signing, CreateUser(username, "Ana", "Lopez", "ana@acme.example", sealed), task_id)


def only_event(worker) -> ResultEvent:
    [(name, args, queue)] = worker.app.sent
    assert (name, queue) == (RESULT_TASK_NAME, RESULTS_QUEUE)
    return ResultEvent.from_message(args[0])


def test_a_valid_task_reaches_the_directory_with_the_opened_password_and_is_reported(keys):
    directory = FakeDirectory()
    worker = make_worker(keys, directory)

    worker.handle(FakeCeleryTask("id-1"), Operation.CREATE_USER, create_envelope(keys))

    [(name, task, password)] = directory.calls
    assert (name, task.username, password) == ("create_user", "ana", PASSWORD)
    event = only_event(worker)
    assert (event.task_id, event.operation, event.username, event.outcome, event.worker) == (
        "id-1",
        "create_user",
        "ana",
        Outcome.SUCCEEDED,
        "dc0",
    )


def test_a_bad_envelope_is_rejected_without_touching_the_directory(keys):
    directory = FakeDirectory()
    worker = make_worker(keys, directory)

    worker.handle(FakeCeleryTask("id-1"), Operation.CREATE_USER, create_envelope(keys, sealed_for="bob"))

    assert directory.calls == []
    event = only_event(worker)
    assert (event.outcome, event.username) == (Outcome.REJECTED, "ana")
    assert PASSWORD not in str(event.to_message())


@pytest.mark.parametrize("error", [NotFoundYet("not yet"), DirectoryUnavailable("down")])
def test_transient_errors_are_retried_with_growing_delays(keys, error):
    worker = make_worker(keys, FakeDirectory(error))
    envelope = sign_task(keys.signing, EnableUser("ana"), "id-1")
    delays = []
    for retries in range(3):
        celery_task = FakeCeleryTask("id-1", retries)
        with pytest.raises(Retry):
            worker.handle(celery_task, Operation.ENABLE_USER, envelope)
        delays.append(celery_task.retried_with["countdown"])

    assert delays == [1, 2, 4]
    assert worker.app.sent == []  # no event while retrying


def test_when_retries_run_out_the_task_is_reported_failed(keys):
    worker = make_worker(keys, FakeDirectory(NotFoundYet("not yet")), max_retries=3)

    worker.handle(
        FakeCeleryTask("id-1", retries=3), Operation.ENABLE_USER, sign_task(keys.signing, EnableUser("ana"), "id-1")
    )

    event = only_event(worker)
    assert (event.outcome, event.reason) == (Outcome.FAILED, "the account was not found (retries exhausted)")


def test_a_refusal_is_final_and_carries_its_reason(keys):
    worker = make_worker(keys, FakeDirectory(DirectoryRefused(COMPLEXITY_REASON)))

    worker.handle(FakeCeleryTask("id-1"), Operation.CREATE_USER, create_envelope(keys))

    assert (only_event(worker).outcome, only_event(worker).reason) == (Outcome.FAILED, COMPLEXITY_REASON)
