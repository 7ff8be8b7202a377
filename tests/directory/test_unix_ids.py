"""uidNumbers stay unique when workers on two DCs create accounts at the same time.

A second DC joins the session's domain, a worker runs beside each DC, and a
burst of create tasks is split between them. Each worker numbers its accounts
from their RIDs, which each DC draws from its own pool: no counter is shared,
so nothing depends on the DCs replicating in time (and here they do not
replicate at all after the join: this machine has no DNS for the test domain,
see test_samba_dc.py), yet no two accounts get the same uid.
"""

from __future__ import annotations

from collections import Counter

import ldb
import pytest
from es4ps_contract.events import Outcome
from es4ps_testkit.registration import unique_username
from es4ps_testkit.samba import SambaDC
from es4ps_testkit.tasks import create_task
from es4ps_testkit.worker import DirectoryWorker

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("directory_worker")]

BURST = 40
UNIX = {
    "uid_range_start": 200000,
    "uid_range_end": 299999,
    "gid_number": 200513,
    "login_shell": "/bin/bash",
    "home_directory": "/home/placeholder",
}


def unix_accounts(dc: SambaDC, usernames: set[str]) -> dict[str, dict[str, str]]:
    """The burst's accounts this DC holds, with their Unix attributes."""
    found = dc.samdb().search(
        base=dc.base_dn,
        scope=ldb.SCOPE_SUBTREE,
        expression="(&(objectClass=user)(uidNumber=*))",
        attrs=["sAMAccountName", "uidNumber", "gidNumber", "loginShell", "unixHomeDirectory"],
    )
    accounts = {}
    for account in found:
        name = str(account["sAMAccountName"][0])
        if name in usernames:
            accounts[name] = {str(key): str(account[key][0]) for key in account if key != "dn"}
    return accounts


def test_a_burst_of_accounts_on_two_dcs_gets_unique_uids(
    tmp_path, task_client, worker_env, contract_keys, samba_dc, second_dc
):
    worker = DirectoryWorker(
        tmp_path / "dc2-worker",
        {
            **worker_env,
            **second_dc.worker_env,
            **contract_keys.result_env("dc2"),
            # The operator lets only dc0's worker create policies' OUs and groups.
            "ES4PS_WORKER_CREATES_CONTAINERS": "0",
            "ES4PS_WORKER_STATE_DIR": str(second_dc.data_dir / "es4ps-worker"),
        },
        name="dc2",
    )
    worker.start()
    try:
        usernames = {unique_username("b") for _ in range(BURST)}
        tasks = {
            task_client.submit(create_task(task_client, name, unix={**UNIX, "home_directory": f"/home/{name}"})): name
            for name in usernames
        }
        events = task_client.wait_for_all(tasks, timeout_s=180)
    finally:
        worker.stop()

    assert {event.outcome for event in events.values()} == {Outcome.SUCCEEDED}
    by_worker = Counter(event.worker for event in events.values())
    assert set(by_worker) == {"test-worker", "dc2"}, by_worker  # both DCs took part
    accounts = unix_accounts(samba_dc, usernames) | unix_accounts(second_dc, usernames)
    assert set(accounts) == usernames
    uids = [int(account["uidNumber"]) for account in accounts.values()]
    assert len(set(uids)) == BURST
    assert all(UNIX["uid_range_start"] < uid <= UNIX["uid_range_end"] for uid in uids)
    for name, account in accounts.items():
        assert (account["gidNumber"], account["loginShell"], account["unixHomeDirectory"]) == (
            "200513",
            "/bin/bash",
            f"/home/{name}",
        )
