"""One create makes one object in the domain, whichever DCs' workers it reaches (es4ps_samba.worker.peers).

The path these guard, seen in the day-2 e2e run: a worker creates an account on
its DC, its acknowledgement is lost with a broker Pod, and the broker delivers
the create again to the other DC's worker before replication has brought the
account there. That worker's record of applied tasks is its own DC's; a name
is unique on one DC only, so before it asks the other DCs it made a second
account of the same name, and both DCs held two after replication.
"""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import uuid

import ldb
import pytest
from es4ps_contract.events import Outcome
from es4ps_contract.tasks import Task
from es4ps_localcluster.processes import wait_until
from es4ps_samba.worker.directory import Directory
from es4ps_samba.worker.peers import PeerUnreachable
from es4ps_testkit.tasks import create_task, prestage_task, run
from es4ps_testkit.worker import DirectoryWorker

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("directory_worker")]

JOIN_PASSWORD = "Join7-Kq4mz-Vr8pt-Hx2wd"


def objects_named(dc, name: str) -> int:
    """How many objects of the domain have the sAMAccountName `name`, on `dc`."""
    found = dc.samdb().search(
        base=dc.base_dn, scope=ldb.SCOPE_SUBTREE, expression=f"(sAMAccountName={name})", attrs=["1.1"]
    )
    return len(found)


def replicated(source, target, marker: str) -> None:
    """Wait until every change `source` made so far has reached `target` (replication keeps their order)."""
    source.samdb().add({"dn": f"OU={marker},{source.base_dn}", "objectClass": "organizationalUnit"})
    wait_until(
        lambda: len(target.samdb().search(source.base_dn, expression=f"(ou={marker})", attrs=["1.1"])) > 0,
        300,  # the DCs pull every 15 s; on a loaded machine it takes longer
        f"{source.hostname}'s changes replicated to {target.hostname}",
    )


def delivered_to_both_workers(context, task: Task, name: str):
    """`task` applied by the first DC's worker, then the same message (same id) taken by the second DC's worker
    before the second DC has pulled anything; returns both result events once replication ran both ways."""
    tmp_path, task_client, directory_worker, worker_env, contract_keys, samba_dc, second_dc = context
    second_dc.inbound_replication(False)
    try:
        task_id = str(uuid.uuid4())
        envelope = task_client.envelope(task, task_id)
        task_client.publish(task.operation, envelope, task_id)
        first = task_client.wait_for(task_id)
        assert objects_named(second_dc, name) == 0  # the second DC has not pulled it

        # The first worker's acknowledgement is lost; the broker delivers the message to the second DC's worker.
        directory_worker.stop()
        env = {**worker_env, **second_dc.worker_env, **contract_keys.result_env("dc2")}
        other = DirectoryWorker(tmp_path / "dc2-worker", {**env, "ES4PS_WORKER_MAX_RETRIES": "15"}, name="dc2")
        other.start()
        try:
            task_client.results.pop(task_id)
            task_client.publish(task.operation, envelope, task_id)
            other.wait_for_log(f"{samba_dc.hostname} holds {name}, which has not replicated here yet")
            assert objects_named(second_dc, name) == 0  # it waits, and makes nothing
            second_dc.inbound_replication(True)
            again = task_client.wait_for(task_id, timeout_s=300)
        finally:
            other.stop()
            directory_worker.start()
    finally:
        second_dc.inbound_replication(True)
    replicated(second_dc, samba_dc, f"after-{task_id}")
    return first, again


@pytest.fixture
def context(tmp_path, task_client, directory_worker, worker_env, contract_keys, samba_dc, second_dc):
    return tmp_path, task_client, directory_worker, worker_env, contract_keys, samba_dc, second_dc


def test_a_create_delivered_again_to_another_dcs_worker_makes_one_account(context, task_client, username):
    samba_dc, second_dc = context[-2:]

    first, again = delivered_to_both_workers(context, create_task(task_client, username), username)

    assert (first.outcome, again.worker, again.outcome, again.reason) == (
        Outcome.SUCCEEDED,
        "dc2",
        Outcome.SUCCEEDED,
        "",
    )
    assert (objects_named(samba_dc, username), objects_named(second_dc, username)) == (1, 1)


def test_a_prestage_delivered_again_to_another_dcs_worker_makes_one_computer(context, task_client):
    samba_dc, second_dc = context[-2:]
    name = "T" + uuid.uuid4().hex[:10].upper()

    first, again = delivered_to_both_workers(context, prestage_task(task_client, name, JOIN_PASSWORD), f"{name}$")

    assert (first.outcome, again.worker, again.outcome, again.reason) == (
        Outcome.SUCCEEDED,
        "dc2",
        Outcome.SUCCEEDED,
        "",
    )
    assert (objects_named(samba_dc, f"{name}$"), objects_named(second_dc, f"{name}$")) == (1, 1)


@pytest.mark.parametrize("away", ["stopped", "hung"])
def test_a_dc_that_does_not_answer_stops_no_first_delivery_and_holds_a_redelivery_back(
    task_client, directory_worker, samba_dc, second_dc, username, away
):
    """Stopped: nothing listens at its address. Hung (SIGSTOP): the kernel still accepts connections, and
    Samba's LDAP client would wait 60 s for each."""
    if away == "stopped":
        second_dc.stop()
    else:
        second_dc.pause()
    try:
        event = run(task_client, create_task(task_client, username))
        # A delivery that may have reached that DC's worker before waits for it (the handler retries it).
        directory = Directory(
            samba_dc.ldap_url,
            samba_dc.realm,
            samba_dc.netbios_name,
            "es4ps-worker",
            samba_dc.worker_password,
            b"k" * 32,
        )  # asking writes no binding line: any key
        other = "t" + uuid.uuid4().hex[:12]
        with pytest.raises(PeerUnreachable, match=f"{second_dc.hostname} cannot be asked whether it holds {other}"):
            directory.run(lambda ou: directory.peers.first_here(ou.samdb, other, True, "taken"))
    finally:
        if away == "hung":
            second_dc.resume()

    assert event.outcome is Outcome.SUCCEEDED
    directory_worker.wait_for_log(f"{second_dc.hostname} cannot be asked whether it holds {username}")
