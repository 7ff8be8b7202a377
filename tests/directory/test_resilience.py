"""No task is lost when the worker dies mid-task, the broker restarts, or the DC goes away for a while."""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from es4ps_contract.events import Outcome
from es4ps_contract.tasks import EnableUser
from es4ps_testkit.samba import find_account, password_authenticates
from es4ps_testkit.tasks import PASSWORD, binding, create_task, run

pytestmark = pytest.mark.services


def test_a_worker_killed_mid_task_completes_the_task_after_restart(task_client, samba_dc, directory_worker, username):
    samba_dc.pause()  # the worker's LDAP request will hang: it is caught in the middle of the task
    try:
        task_id = task_client.submit(create_task(task_client, username))
        directory_worker.wait_for_log(f"[{task_id}] received")
        directory_worker.kill()
    finally:
        samba_dc.resume()

    directory_worker.start()

    assert task_client.wait_for(task_id).outcome is Outcome.SUCCEEDED
    assert run(task_client, EnableUser(username, **binding(username))).outcome is Outcome.SUCCEEDED
    assert password_authenticates(samba_dc, username, PASSWORD)


def test_a_pool_process_killed_mid_task_gives_the_task_back(task_client, samba_dc, directory_worker, username):
    samba_dc.pause()
    try:
        task_id = task_client.submit(create_task(task_client, username))
        directory_worker.wait_for_log(f"[{task_id}] received")
        children = subprocess.run(
            ["pgrep", "-P", str(directory_worker.process.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        for pid in children:  # the pool processes; the worker's main process lives on
            os.kill(int(pid), signal.SIGKILL)
        directory_worker.wait_for_log("WorkerLostError")
    finally:
        samba_dc.resume()

    assert task_client.wait_for(task_id).outcome is Outcome.SUCCEEDED  # requeued (reject_on_worker_lost), redone
    assert directory_worker.process.poll() is None


def test_a_broker_restart_with_tasks_queued_loses_none(task_client, rabbitmq, samba_dc, directory_worker, username):
    directory_worker.stop()
    usernames = [f"{username}q{i}" for i in range(10)]
    task_ids = [task_client.submit(create_task(task_client, name)) for name in usernames]
    assert rabbitmq.queue_depth("es4ps.provisioning") >= len(task_ids)

    rabbitmq.stop()
    rabbitmq.start()
    directory_worker.start()

    events = task_client.wait_for_all(task_ids, timeout_s=120)
    assert {event.outcome for event in events.values()} == {Outcome.SUCCEEDED}
    assert all(find_account(samba_dc, name) is not None for name in usernames)


def test_the_worker_reconnects_when_the_dc_restarts(task_client, samba_dc, directory_worker, username):
    assert run(task_client, create_task(task_client, username)).outcome is Outcome.SUCCEEDED

    samba_dc.stop()
    enable_id = task_client.submit(
        EnableUser(username, **binding(username))
    )  # fails to reach the DC: retried with backoff
    directory_worker.wait_for_log(f"task {enable_id} (enable_user {username}): the directory is unavailable")
    samba_dc.start()

    assert task_client.wait_for(enable_id, timeout_s=60).outcome is Outcome.SUCCEEDED
    assert password_authenticates(samba_dc, username, PASSWORD)
