"""A portal stand-in for tests and benchmarks: publishes signed tasks and collects result events.

It uses the contract exactly as the portal does (sign, seal, publish to the
provisioning queue with the portal's certificate) and reads the results queue
directly, so tests see each event as the portal's consumer would: an event
that does not verify under its worker's result key is kept apart
(`unverified`), never taken for a result. `create_task`,
`prestage_task` and `run` are the shorthands of the directory tests; `pipeline` is the
benchmarks' measurement of the whole path.
"""

from __future__ import annotations

import contextlib
import statistics
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from celery import Celery
from es4ps_contract.events import EventSignatureError, Outcome, ResultEvent, open_event
from es4ps_contract.keys import load_sealing_public_key, load_signing_key, load_verify_keys
from es4ps_contract.sealing import seal_password
from es4ps_contract.signing import sign_task
from es4ps_contract.tasks import PROVISIONING_QUEUE, RESULTS_QUEUE, CreateUser, Operation, PrestageComputer, Task
from es4ps_contract.transport import celery_settings
from es4ps_localcluster.processes import wait_until
from kombu import Consumer

from . import ServiceError

# A password the domain accepts (complexity on, not containing the test names).
PASSWORD = "Corr3ct-Horse!battery"  # noqa: S105 - a test account's password


class TaskClient:
    """Publishes tasks as the portal and waits for their result events."""

    def __init__(self, portal_env: Mapping[str, str]) -> None:
        self.app = Celery("es4ps_test_portal", set_as_current=False)
        self.app.conf.update(celery_settings(portal_env))
        self.app.conf.update(broker_transport_options={"confirm_publish": True})
        self.signing_key = load_signing_key(portal_env["ES4PS_SIGNING_PRIVATE_KEY_FILE"])
        self.sealing_key = load_sealing_public_key(portal_env["ES4PS_SEALING_PUBLIC_KEY_FILE"])
        self.result_keys_dir = portal_env["ES4PS_RESULT_KEYS_DIR"]
        self.results: dict[str, ResultEvent] = {}
        self.unverified: list[tuple[object, str]] = []
        self.received_at: dict[str, float] = {}
        self._connection = self.app.connection_for_read()
        self._consumer: Consumer | None = None

    def seal(self, username: str, password: str) -> str:
        return seal_password(self.sealing_key, username, password)

    def envelope(self, task: Task, task_id: str) -> dict[str, Any]:
        return sign_task(self.signing_key, task, task_id)

    def submit(self, task: Task, task_id: str | None = None) -> str:
        """Sign and publish `task`; returns its task id."""
        task_id = task_id or str(uuid.uuid4())
        self.publish(task.operation, self.envelope(task, task_id), task_id)
        return task_id

    def publish(self, operation: Operation | str, envelope: object, task_id: str | None = None) -> str:
        """Publish any envelope (also a forged or broken one) as the task of `operation`."""
        task_id = task_id or str(uuid.uuid4())
        name = operation.task_name if isinstance(operation, Operation) else operation
        self.app.send_task(name, args=[envelope], task_id=task_id, queue=PROVISIONING_QUEUE)
        return task_id

    def _on_result(self, body: object, message) -> None:
        args, _kwargs, _embed = body
        try:
            # Keys are read at each event: workers started later bring theirs.
            event = open_event(load_verify_keys(self.result_keys_dir), args[0])
        except EventSignatureError as exc:
            self.unverified.append((args[0], str(exc)))
            message.ack()
            return
        self.results[event.task_id] = event
        self.received_at.setdefault(event.task_id, time.monotonic())
        message.ack()

    def _drain(self, timeout_s: float) -> None:
        """Receive result events for up to `timeout_s` into `results` (reconnecting after a broker restart)."""
        try:
            if self._consumer is None:
                self._connection = self.app.connection_for_read()
                self._connection.connect()
                self._consumer = Consumer(
                    self._connection.channel(),
                    queues=[self.app.amqp.queues[RESULTS_QUEUE]],
                    callbacks=[self._on_result],
                    accept=["json"],
                )
                self._consumer.consume()
            self._connection.drain_events(timeout=timeout_s)
        except TimeoutError:
            pass
        except (OSError, *self._connection.connection_errors):
            self._connection.collect()
            self._consumer = None
            time.sleep(0.2)

    def wait_for(self, task_id: str, timeout_s: float = 60) -> ResultEvent:
        """The result event of `task_id`; raises TimeoutError if none came in time."""
        return self.wait_for_all([task_id], timeout_s)[task_id]

    def wait_for_all(self, task_ids: Iterable[str], timeout_s: float = 60) -> dict[str, ResultEvent]:
        """The result events of `task_ids`; raises TimeoutError if some did not come in time."""
        wanted = set(task_ids)

        def all_received() -> bool:
            if not wanted <= self.results.keys():
                self._drain(timeout_s=0.5)  # waits for the next event itself
            return wanted <= self.results.keys()

        def missing() -> str:
            left = sorted(wanted - self.results.keys())
            return f"result events of {len(left)} task(s), e.g. {left[0]}"

        try:
            wait_until(all_received, timeout_s, missing, interval_s=0)
        finally:
            self._stop_consuming()
        return {task_id: self.results[task_id] for task_id in wanted}

    def _stop_consuming(self) -> None:
        """Leave the results queue to other consumers (a real portal's) between waits: closing the
        channel gives back any event delivered to this client but not yet read."""
        if self._consumer is not None:
            with contextlib.suppress(OSError, *self._connection.connection_errors):
                self._consumer.channel.close()
            self._consumer = None

    def close(self) -> None:
        self._stop_consuming()
        self._connection.release()


def binding(username: str, registration: str | None = None) -> dict[str, str]:
    """The registration fields of a test account's tasks: one registration per username unless told otherwise."""
    registration = registration or str(uuid.uuid5(uuid.NAMESPACE_URL, f"es4ps-test:{username}"))
    return {"registration": registration, "email": f"{username}@acme.example"}


def create_task(client: TaskClient, username: str, password: str = PASSWORD, **fields: str) -> CreateUser:
    """A create task for `username` with the password sealed; `fields` override names, address and registration."""
    values = {"given_name": "Ana", "surname": "Example", **binding(username), **fields}
    values.setdefault("sealed_password", client.seal(username, password))
    return CreateUser(username, **values)


def computer(name: str, computer_id: str | None = None) -> dict[str, str]:
    """The fields naming a test computer (`name` canonical): one record per name unless told otherwise."""
    computer_id = computer_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"es4ps-test-computer:{name}"))
    return {"computer": name, "computer_id": computer_id}


def prestage_task(client: TaskClient, name: str, join_password: str, **fields: str) -> PrestageComputer:
    """A pre-stage task for the computer `name` with its one-time join password sealed; `fields` override."""
    values = {**computer(name), **fields}
    return PrestageComputer(sealed_password=client.seal(f"{name}$", join_password), **values)


def run(client: TaskClient, task: Task, timeout_s: float = 60) -> ResultEvent:
    """Publish `task` and return its result event."""
    return client.wait_for(client.submit(task), timeout_s)


def pipeline(client: TaskClient, prefix: str, n: int) -> tuple[float, float, float]:
    """(accounts per second, p50 ms, p99 ms) of n create tasks for `prefix`0.. published at once.

    The whole path: signed tasks with sealed passwords through the broker to the
    workers and their DCs, until every result event is back. Latency runs from
    publish to result event, so it includes the wait in the queue.
    """
    tasks = [create_task(client, f"{prefix}{i}", given_name="Bench", surname="Mark") for i in range(n)]
    published_at = {}
    start = time.monotonic()
    for task in tasks:
        task_id = str(uuid.uuid4())
        published_at[task_id] = time.monotonic()
        client.submit(task, task_id)
    events = client.wait_for_all(published_at, timeout_s=60 + n)
    failed = [e for e in events.values() if e.outcome is not Outcome.SUCCEEDED]
    if failed:
        raise ServiceError(f"{len(failed)} pipeline tasks did not succeed, e.g. {failed[0]}")
    done = max(client.received_at[t] for t in published_at)
    latencies = sorted((client.received_at[t] - published_at[t]) * 1000 for t in published_at)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * len(latencies)) - 1)]
    return n / (done - start), statistics.median(latencies), p99
