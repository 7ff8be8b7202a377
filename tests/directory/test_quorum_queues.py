"""The queues of a clustered broker are quorum queues: the worker and the portal's side work with them as before.

A quorum queue supports only per-consumer prefetch and refuses a consumer with
global QoS, so this runs the real worker against a broker whose definitions
are the operator's for a cluster (one node is enough: the queue type is what
matters), including a task that retries while the DC is away.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from es4ps_contract.events import Outcome
from es4ps_contract.tasks import EnableUser
from es4ps_testkit.plugins.services import started
from es4ps_testkit.rabbitmq import RabbitMQ
from es4ps_testkit.samba import password_authenticates
from es4ps_testkit.tasks import PASSWORD, TaskClient, binding, create_task, run
from es4ps_testkit.worker import DirectoryWorker

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def quorum_broker(tmp_path_factory, test_ca) -> Iterator[RabbitMQ]:
    broker = started(RabbitMQ(tmp_path_factory.mktemp("rabbitmq-quorum"), test_ca, queue_type="quorum"))
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def quorum_client(quorum_broker, samba_dc, contract_keys) -> Iterator[TaskClient]:
    client = TaskClient({**quorum_broker.portal_env, **samba_dc.portal_env, **contract_keys.portal_env})
    yield client
    client.close()


@pytest.fixture(scope="module")
def quorum_worker(tmp_path_factory, quorum_broker, samba_dc, contract_keys) -> Iterator[DirectoryWorker]:
    env = {
        **quorum_broker.worker_env,
        **samba_dc.worker_env,
        **contract_keys.worker_env,
        **contract_keys.result_env(DirectoryWorker.DEFAULT_NAME),
    }
    worker = started(DirectoryWorker(tmp_path_factory.mktemp("worker-quorum"), env))
    yield worker
    worker.stop()


def queue_types(broker: RabbitMQ) -> dict[str, str]:
    listed = broker.ctl("list_queues", "-p", "es4ps", "name", "type", "--formatter", "json")
    return {queue["name"]: queue["type"] for queue in json.loads(listed)}


def test_tasks_flow_through_quorum_queues(quorum_broker, quorum_client, quorum_worker, samba_dc, username):
    assert queue_types(quorum_broker) == {"es4ps.provisioning": "quorum", "es4ps.results": "quorum"}
    assert run(quorum_client, create_task(quorum_client, username)).outcome is Outcome.SUCCEEDED
    assert run(quorum_client, EnableUser(username, **binding(username))).outcome is Outcome.SUCCEEDED
    assert password_authenticates(samba_dc, username, PASSWORD)
    log = quorum_worker.log.read_text()
    assert "Global QoS is disabled" in log  # per-consumer prefetch, all a quorum queue supports
    assert "celery_delayed" not in log  # nothing declared: the worker has no configure right


def test_a_task_retried_while_the_dc_is_away_completes_on_quorum_queues(
    quorum_client, quorum_worker, samba_dc, username
):
    samba_dc.stop()
    try:
        task_id = quorum_client.submit(create_task(quorum_client, username))
        # The worker retries with a countdown: the retry goes back through the quorum queue.
        quorum_worker.wait_for_log(f"task {task_id} (create_user {username}): the directory is unavailable")
    finally:
        samba_dc.start()
    assert quorum_client.wait_for(task_id, timeout_s=120).outcome is Outcome.SUCCEEDED
