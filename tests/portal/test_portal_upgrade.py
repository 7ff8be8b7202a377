"""What the previous release left behind still works after the upgrade to held creates and tasks signed when sent.

In process, against the real broker: a task the previous release left in the
outbox (a signed envelope, its issue time then) is migrated to its fields and
sent signed afresh, so the worker takes it even if it waited longer than an
envelope lives. The registrations the previous release made (their account
created, disabled, when they registered) are tested end to end in
test_portal_unconfirmed.py.
"""

from __future__ import annotations

import time
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from es4ps_contract.keys import load_signing_key, load_verify_key
from es4ps_contract.signing import DEFAULT_MAX_AGE_S, open_task, sign_task
from es4ps_contract.tasks import EnableUser, Operation
from es4ps_portal.accounts.models import User
from es4ps_portal.provisioning.models import ProvisioningTask
from es4ps_portal.provisioning.outbox import relay_round
from es4ps_testkit.live_portal import read_task_queue
from es4ps_testkit.registration import ALLOWED_DOMAIN, unique_username

BEFORE = [("provisioning", "0004_apply_policy_operation")]


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor


@pytest.mark.django_db(transaction=True)
def test_a_task_the_previous_release_left_in_the_outbox_is_sent_signed_afresh(broker, contract_keys, directory_worker):
    username = unique_username("up")
    user = User.objects.create(username=username, email=f"{username}@{ALLOWED_DOMAIN}", directory_state="created")
    executor = migrate(BEFORE)  # the outbox as the previous release had it (the users' table is not concerned)
    old = executor.loader.project_state(BEFORE).apps
    task_id = str(uuid.uuid4())
    written_at = int(time.time()) - DEFAULT_MAX_AGE_S - 3600  # it waited longer than an envelope lives
    signing_key = load_signing_key(contract_keys.portal_env["ES4PS_SIGNING_PRIVATE_KEY_FILE"])
    task = EnableUser(username, registration=str(user.registration_id), email=user.email)
    envelope = sign_task(signing_key, task, task_id, issued_at=written_at)
    old.get_model("provisioning", "ProvisioningTask").objects.create(
        task_id=task_id, user_id=user.pk, operation=Operation.ENABLE_USER.value, envelope=envelope
    )

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    waiting = ProvisioningTask.objects.get(task_id=task_id)
    assert (waiting.payload, waiting.held, waiting.published_at) == (envelope["payload"], False, None)

    directory_worker.stop()  # the test reads the queue itself
    try:
        sent_from = int(time.time())
        assert relay_round()[0] >= 1
        (message,) = [m for m in read_task_queue(broker, take=[task_id]) if m["id"] == task_id]
    finally:
        directory_worker.start()
    verify_key = load_verify_key(contract_keys.worker_env["ES4PS_SIGNING_PUBLIC_KEY_FILE"])
    signed = open_task(verify_key, message["args"][0], operation=Operation.ENABLE_USER, task_id=task_id)
    assert signed.issued_at >= sent_from  # signed when sent, not when the previous release wrote it
    assert (signed.task.username, signed.task.registration) == (username, str(user.registration_id))
