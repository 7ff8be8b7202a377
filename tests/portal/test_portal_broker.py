"""What the portal puts on the broker: signed tasks on the provisioning queue, the password sealed for the workers.

The web side writes them to the outbox; the relay (`relay_round`, run here as the consumer runs it) publishes.
"""

from __future__ import annotations

import time

import pytest
from django.test import Client
from es4ps_contract.keys import load_sealing_private_key, load_verify_key
from es4ps_contract.sealing import SealingError, unseal_password
from es4ps_contract.signing import open_task
from es4ps_contract.tasks import Operation
from es4ps_portal.accounts.models import User
from es4ps_portal.provisioning.models import ProvisioningTask
from es4ps_portal.provisioning.outbox import relay_round
from es4ps_testkit.live_portal import read_task_queue
from es4ps_testkit.mail import MailCatcher
from es4ps_testkit.registration import ALLOWED_DOMAIN, GOOD_PASSWORD, form
from nacl.public import PrivateKey

pytestmark = pytest.mark.django_db


def registration(username: str, **changes) -> dict[str, str]:
    return form(username, **changes)


def test_tasks_reach_the_queue_signed_with_the_password_sealed(
    client: Client, broker, smtp: MailCatcher, contract_keys, directory_worker, username
):
    refused = f"{username}r"
    # The test reads the queue itself: the worker must not take the tasks first.
    directory_worker.stop()
    try:
        assert client.post("/register/", registration(username)).status_code == 302
        code = smtp.wait_for(f"{username}@{ALLOWED_DOMAIN}").text.split("code on the status page: ", 1)[1][:6]
        client.post("/verify/code/", {"code": code})
        bad_password = registration(refused, new_password1="password", new_password2="password")
        assert client.post("/register/", bad_password).status_code == 200
        assert client.post("/register/", registration(refused, email=f"{refused}@evil.example")).status_code == 200
        tasks = ProvisioningTask.objects.filter(user__username=username)
        # In the outbox: the tasks' fields, the password only sealed, nothing published yet.
        assert [t.published_at for t in tasks] == [None, None]
        assert all(t.payload and GOOD_PASSWORD not in str(t.payload) for t in tasks)
        time.sleep(1.1)  # the relay signs when it sends: the issue time is then, not when they were written
        sent_from = int(time.time())
        assert relay_round() == (2, False)
        recorded = {t.operation: str(t.task_id) for t in tasks}
        messages = read_task_queue(broker, take=recorded.values())
    finally:
        directory_worker.start()

    taken = {m["id"]: m for m in messages if m["id"] in recorded.values()}
    assert set(taken) == set(recorded.values())
    # Published: marked so, and the fields (the sealed password with them) no longer kept.
    assert all(t.published_at and t.payload is None for t in ProvisioningTask.objects.filter(user__username=username))
    # In the order they were written: create before enable.
    assert [m["id"] for m in messages if m["id"] in recorded.values()] == [
        recorded[Operation.CREATE_USER],
        recorded[Operation.ENABLE_USER],
    ]
    assert not [m for m in messages if refused in m["body"]], "a refused registration published a task"

    create = taken[recorded[Operation.CREATE_USER]]
    assert create["name"] == Operation.CREATE_USER.task_name
    assert GOOD_PASSWORD not in create["body"]
    verify_key = load_verify_key(contract_keys.worker_env["ES4PS_SIGNING_PUBLIC_KEY_FILE"])
    signed = open_task(verify_key, create["args"][0], operation=Operation.CREATE_USER, task_id=create["id"])
    assert signed.issued_at >= sent_from
    task = signed.task
    registration_id = str(User.objects.get(username=username).registration_id)
    assert (task.username, task.given_name, task.surname, task.email, task.registration) == (
        username,
        "Ada",
        "Lovelace",
        f"{username}@{ALLOWED_DOMAIN}",
        registration_id,
    )
    with pytest.raises(SealingError):
        unseal_password(PrivateKey.generate(), task.sealed_password, username)
    worker_key = load_sealing_private_key(contract_keys.worker_env["ES4PS_SEALING_PRIVATE_KEY_FILE"])
    assert unseal_password(worker_key, task.sealed_password, username) == GOOD_PASSWORD

    enable = taken[recorded[Operation.ENABLE_USER]]
    assert enable["name"] == Operation.ENABLE_USER.task_name
    enabled = open_task(verify_key, enable["args"][0], operation=Operation.ENABLE_USER, task_id=enable["id"]).task
    assert (enabled.username, enabled.registration) == (username, registration_id)
