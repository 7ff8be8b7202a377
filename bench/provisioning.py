"""Provisioning speed: the whole pipeline beside three ways of writing to the same DC. Prints JSON.

Starts the real services (RabbitMQ with mutual TLS, a Samba AD DC from the
entrypoint, the worker) exactly as the tests do, then, in each run, creates
`n` accounts four ways against the same DC:

- pipeline: signed tasks with sealed passwords published as the portal does,
  applied by the worker (the bound, ordered path: the deleted-registration
  check, the add with its MAC'd binding line, the record of applied tasks),
  signed result events received and verified (`accounts_per_s`, latency
  from publish to result event: `p50_ms`, `p99_ms`; all tasks are published
  at once, so latency includes the wait in the queue);
- limit as the Administrator: one LDAP add per account carrying unicodePwd
  and userAccountControl = normal|disabled into CN=Users over one connection
  (`limit_per_s`, as measured since the first round);
- limit as the worker's own account: the worker's very add (its attributes,
  its binding line) into the managed OU over one connection, the rights the
  DC evaluates per attribute included (`limit_worker_per_s`): the limit the
  pipeline is held against (`pipeline_vs_worker_limit`);
- newuser: Samba's `samdb.newuser` over one connection (`newuser_per_s`);
- naive: a new connection per account, an existence check, newuser, then
  disable (`naive_per_s`).

Where the time goes, per account (CPU from /proc, summed over each side's
processes): the DC's CPU for an Administrator's add (`limit_dc_cpu_ms`), for
the worker's add (`limit_worker_dc_cpu_ms`) and in the pipeline
(`pipeline_dc_cpu_ms`); the worker's CPU (`pipeline_worker_cpu_ms`), the
broker's (`pipeline_broker_cpu_ms`) and the publishing client's
(`pipeline_client_cpu_ms`); `pipeline_dc_busy` is the share of the
pipeline's wall time the DC spent on CPU (1: the DC never waited). The DC's
time waiting for a CPU while it had work (the scheduler's run delay, per
account) in the worker's limit and in the pipeline (`limit_worker_dc_wait_ms`,
`pipeline_dc_wait_ms`): on a machine of two cores, what the pipeline's
other processes (the worker, the broker, the publishing client) take from
the DC shows here, not as a DC without requests.

The DC checks its replication topology as the product's does
(es4ps_samba.dc.smbconf.REPLICATION_CHECKS: every minute), not every 15 s as
test DCs do for their replication tests: on a lone DC that check costs
about 0.2 s of CPU, and with runs of about 15 s it could land in the same
phase (the pipeline's, say) of every run.

Figures are medians over the runs; `per_run` keeps each run's numbers;
`load_average` is the machine's 1-minute load at the start and the end.

    .venv/bin/python bench/provisioning.py [--n 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ldb
from es4ps_contract.directory import MANAGED_OU
from es4ps_contract.keys import load_sealing_private_key
from es4ps_samba.dc.smbconf import REPLICATION_CHECKS
from es4ps_samba.samdb import open_remote_samdb
from es4ps_samba.worker.binding import Binding, binding_key
from es4ps_samba.worker.records import account_record, encode_password
from es4ps_testkit.ca import ThrowawayCA
from es4ps_testkit.cpu import cpu_seconds, cpu_wait_seconds
from es4ps_testkit.rabbitmq import RabbitMQ
from es4ps_testkit.samba import SambaDC
from es4ps_testkit.tasks import TaskClient, binding, create_task, pipeline
from es4ps_testkit.worker import ContractKeys, DirectoryWorker
from samba.dsdb import UF_ACCOUNTDISABLE, UF_NORMAL_ACCOUNT

PASSWORD = "Bench-Passw0rd!"  # noqa: S105 - a benchmark account's password


def timed(action, count: int) -> float:
    """Accounts per second of `action(i)` for i in range(count)."""
    start = time.perf_counter()
    for i in range(count):
        action(i)
    return count / (time.perf_counter() - start)


def worker_limit_rate(dc: SambaDC, client: TaskClient, sealing_key_file: str, prefix: str, n: int) -> float:
    """The worker's add (es4ps_samba.worker.records.account_record) as the worker's account, one connection."""
    samdb = open_remote_samdb(dc.ldap_url, dc.realm, dc.netbios_name, "es4ps-worker", dc.worker_password)
    key = binding_key(bytes(load_sealing_private_key(sealing_key_file)))
    ou = f"{MANAGED_OU},{dc.base_dn}"
    tasks = [create_task(client, f"{prefix}{i}", given_name="Bench", surname="Mark") for i in range(n)]
    lines = [
        Binding.new(binding(t.username)["registration"], int(time.time()), "t").line(key, t.username) for t in tasks
    ]

    def add(i: int) -> None:
        samdb.add(account_record(f"CN={tasks[i].username},{ou}", tasks[i], dc.realm, lines[i], PASSWORD))

    return timed(add, n)


def limit_rate(dc: SambaDC, prefix: str, n: int) -> float:
    samdb = dc.samdb()
    users = f"CN=Users,{dc.base_dn}"

    def add(i: int) -> None:
        samdb.add(
            {
                "dn": f"CN={prefix}{i},{users}",
                "objectClass": "user",
                "sAMAccountName": f"{prefix}{i}",
                "userAccountControl": str(UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE),
                "unicodePwd": encode_password(PASSWORD),
            }
        )

    return timed(add, n)


def newuser_rate(dc: SambaDC, prefix: str, n: int) -> float:
    samdb = dc.samdb()
    return timed(lambda i: samdb.newuser(f"{prefix}{i}", PASSWORD), n)


def naive_rate(dc: SambaDC, prefix: str, n: int) -> float:
    def one(i: int) -> None:
        samdb = dc.samdb()
        username = f"{prefix}{i}"
        expression = f"(sAMAccountName={ldb.binary_encode(username)})"
        if not samdb.search(dc.base_dn, scope=ldb.SCOPE_SUBTREE, expression=expression, attrs=["dn"]):
            samdb.newuser(username, PASSWORD)
            samdb.disable_account(expression)

    return timed(one, n)


def measured(groups: dict[str, list[int]], n: int, action):
    """`action()`'s result and the CPU milliseconds per account of each group (and of this process, `client`), with
    the DC's milliseconds waiting for a CPU (`dc_wait`)."""
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    waited = cpu_wait_seconds(groups["dc"])
    own = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    value = action()
    wall_ms = (time.perf_counter() - start) * 1000
    cpu = {name: (cpu_seconds(pids) - before[name]) * 1000 / n for name, pids in groups.items()}
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu["client"] = (after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime) * 1000 / n
    cpu["wall"] = wall_ms / n
    cpu["dc_wait"] = (cpu_wait_seconds(groups["dc"]) - waited) * 1000 / n
    return value, cpu


def one_run(run: int, n: int, dc, client, groups, sealing_key_file: str) -> dict[str, float]:
    (accounts, p50, p99), pipe = measured(groups, n, lambda: pipeline(client, f"p{run}x", n))
    limit, admin = measured(groups, n, lambda: limit_rate(dc, f"l{run}x", n))
    worker_limit, delegated = measured(
        groups, n, lambda: worker_limit_rate(dc, client, sealing_key_file, f"w{run}x", n)
    )
    return {
        "limit_per_s": limit,
        "limit_worker_per_s": worker_limit,
        "newuser_per_s": newuser_rate(dc, f"u{run}x", n),
        "naive_per_s": naive_rate(dc, f"v{run}x", n),
        "accounts_per_s": accounts,
        "p50_ms": p50,
        "p99_ms": p99,
        "limit_dc_cpu_ms": admin["dc"],
        "limit_worker_dc_cpu_ms": delegated["dc"],
        "pipeline_dc_cpu_ms": pipe["dc"],
        "pipeline_worker_cpu_ms": pipe["worker"],
        "pipeline_broker_cpu_ms": pipe["broker"],
        "pipeline_client_cpu_ms": pipe["client"],
        "pipeline_dc_busy": pipe["dc"] / pipe["wall"],
        "limit_worker_dc_wait_ms": delegated["dc_wait"],
        "pipeline_dc_wait_ms": pipe["dc_wait"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="accounts per measurement (default 100)")
    parser.add_argument("--runs", type=int, default=3, help="runs; medians are reported (default 3)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="es4ps-bench-"))
    ca = ThrowawayCA(base / "ca")
    product_checks = "\n".join(f"{option} = {value}" for option, value in REPLICATION_CHECKS.items())
    broker, dc = RabbitMQ(base / "rabbitmq", ca), SambaDC(base / "samba", ca, extra_options=product_checks)
    worker = client = None
    try:
        broker.start()
        dc.start()
        keys = ContractKeys(base / "keys")
        worker = DirectoryWorker(
            base / "worker",
            {**broker.worker_env, **dc.worker_env, **keys.worker_env, **keys.result_env(DirectoryWorker.DEFAULT_NAME)},
        )
        worker.start()
        client = TaskClient({**broker.portal_env, **keys.portal_env})
        pipeline(client, "warm", 3)  # the worker's first task opens its connection
        groups = {"dc": dc.process_groups(), "worker": [worker.process.pid], "broker": broker.process_groups()}
        sealing_key_file = keys.worker_env["ES4PS_SEALING_PRIVATE_KEY_FILE"]
        load_before = os.getloadavg()[0]
        runs = [one_run(run, args.n, dc, client, groups, sealing_key_file) for run in range(args.runs)]
        load_average = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    finally:
        if client is not None:
            client.close()
        if worker is not None:
            worker.stop()
        dc.close()
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)

    result = {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}
    result.update(
        n=args.n,
        runs=args.runs,
        load_average=load_average,
        pipeline_vs_limit=round(result["accounts_per_s"] / result["limit_per_s"], 3),
        pipeline_vs_worker_limit=round(
            statistics.median(r["accounts_per_s"] / r["limit_worker_per_s"] for r in runs), 3
        ),
        pipeline_vs_newuser=round(result["accounts_per_s"] / result["newuser_per_s"], 3),
        per_run=[{key: round(value, 2) for key, value in r.items()} for r in runs],
    )
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
