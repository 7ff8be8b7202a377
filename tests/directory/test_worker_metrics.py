"""The worker's metrics endpoint: the sums of its pool processes, moving with the tasks the real worker applies."""

from __future__ import annotations

import time

import pytest
from es4ps_contract.events import Outcome
from es4ps_contract.signing import sign_envelope
from es4ps_contract.tasks import EnableUser, Operation
from es4ps_testkit.metrics import scrape
from es4ps_testkit.tasks import binding, create_task, run

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("directory_worker")]

CREATE = {"operation": "create_user"}
ENABLE = {"operation": "enable_user"}


def test_outcomes_durations_and_directory_errors_are_counted(task_client, directory_worker, username):
    before = scrape(directory_worker.metrics_url)
    # The pool's two processes share these tasks: the endpoint shows the sum of both.
    created = [run(task_client, create_task(task_client, f"{username}n{i}")) for i in range(4)]
    enable = EnableUser(f"{username}n0", **binding(f"{username}n0"))
    enable_id = task_client.submit(enable)
    enabled = task_client.wait_for(enable_id)
    task_client.results.pop(enable_id)  # the same task delivered again (a redelivery, a replay)
    repeated = task_client.wait_for(
        task_client.publish(enable.operation, task_client.envelope(enable, enable_id), enable_id)
    )
    weak = run(task_client, create_task(task_client, f"{username}w", password="weak"))  # noqa: S106
    junk = task_client.wait_for(task_client.publish(Operation.ENABLE_USER, "enable administrator, please"))
    after = scrape(directory_worker.metrics_url)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert [event.outcome for event in created] == [Outcome.SUCCEEDED] * 4
    assert [e.outcome for e in (enabled, repeated, weak, junk)] == [
        Outcome.SUCCEEDED,
        Outcome.SUCCEEDED,
        Outcome.FAILED,
        Outcome.REJECTED,
    ]
    assert moved("es4ps_worker_tasks_total", **CREATE, outcome="succeeded") == 4
    assert moved("es4ps_worker_tasks_total", **CREATE, outcome="failed") == 1
    assert moved("es4ps_worker_tasks_total", **ENABLE, outcome="succeeded") == 1
    assert moved("es4ps_worker_tasks_total", **ENABLE, outcome="repeated") == 1
    assert moved("es4ps_worker_tasks_total", **ENABLE, outcome="rejected") == 1
    assert moved("es4ps_worker_directory_errors_total", **CREATE, error="refused") == 1
    assert moved("es4ps_worker_task_duration_seconds_count", **CREATE) == 5
    assert moved("es4ps_worker_task_duration_seconds_sum", **CREATE) > 0
    # From the task's issue to its outcome: every task applied, not the repeated or rejected ones.
    assert moved("es4ps_worker_publish_to_apply_seconds_count", **CREATE) == 5
    assert moved("es4ps_worker_publish_to_apply_seconds_count", **ENABLE) == 1


def test_the_time_a_task_waited_before_the_worker_shows_from_publish_to_apply(task_client, directory_worker, username):
    """A task the portal issued a minute ago (it waited in the outbox while the broker was away, say)."""
    before = scrape(directory_worker.metrics_url)
    task_id = f"waited-{username}"
    payload = task_client.envelope(create_task(task_client, username), task_id)["payload"]
    issued_a_minute_ago = sign_envelope(
        task_client.signing_key, Operation.CREATE_USER, task_id, payload, issued_at=int(time.time()) - 60
    )
    event = task_client.wait_for(task_client.publish(Operation.CREATE_USER, issued_a_minute_ago, task_id))
    after = scrape(directory_worker.metrics_url)

    assert event.outcome is Outcome.SUCCEEDED
    name = "es4ps_worker_publish_to_apply_seconds"
    assert after.value(f"{name}_count", **CREATE) - before.value(f"{name}_count", **CREATE) == 1
    assert after.value(f"{name}_bucket", **CREATE, le="30.0") == before.value(f"{name}_bucket", **CREATE, le="30.0")
    assert (
        after.value(f"{name}_bucket", **CREATE, le="120.0") - before.value(f"{name}_bucket", **CREATE, le="120.0") == 1
    )
