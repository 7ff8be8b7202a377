"""Provisioning speed: the whole pipeline beside three ways of writing to the same DC. Prints JSON.

Starts the real services (RabbitMQ with mutual TLS, a Samba AD DC from the
entrypoint, the worker) exactly as the tests do, then, in each run, creates
`n` accounts four ways against the same DC:

- pipeline: signed tasks with sealed passwords published as the portal does,
  applied by the worker, result events received (`accounts_per_s`, latency
  from publish to result event: `p50_ms`, `p99_ms`; all tasks are published
  at once, so latency includes the wait in the queue);
- limit: one LDAP add per account carrying unicodePwd and
  userAccountControl = normal|disabled over one connection (`limit_per_s`);
- newuser: Samba's `samdb.newuser` over one connection (`newuser_per_s`);
- naive: a new connection per account, an existence check, newuser, then
  disable (`naive_per_s`).

Figures are medians over the runs; `per_run` keeps each run's numbers.

    .venv/bin/python bench/provisioning.py [--n 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ldb
from es4ps_samba.worker.directory import encode_password
from es4ps_testkit.ca import ThrowawayCA
from es4ps_testkit.rabbitmq import RabbitMQ
from es4ps_testkit.samba import SambaDC
from es4ps_testkit.tasks import TaskClient, pipeline
from es4ps_testkit.worker import ContractKeys, DirectoryWorker
from samba.dsdb import UF_ACCOUNTDISABLE, UF_NORMAL_ACCOUNT

PASSWORD = "Bench-Passw0rd!"  # noqa: S105 - a benchmark account's password


def timed(action, count: int) -> float:
    """Accounts per second of `action(i)` for i in range(count)."""
    start = time.perf_counter()
    for i in range(count):
        action(i)
    return count / (time.perf_counter() - start)


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="accounts per measurement (default 100)")
    parser.add_argument("--runs", type=int, default=3, help="runs; medians are reported (default 3)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="es4ps-bench-"))
    ca = ThrowawayCA(base / "ca")
    broker, dc = RabbitMQ(base / "rabbitmq", ca), SambaDC(base / "samba", ca)
    worker = client = None
    try:
        broker.start()
        dc.start()
        keys = ContractKeys(base / "keys")
        worker = DirectoryWorker(base / "worker", {**broker.worker_env, **dc.worker_env, **keys.worker_env})
        worker.start()
        client = TaskClient({**broker.portal_env, **keys.portal_env})
        pipeline(client, "warm", 3)  # the worker's first task opens its connection
        runs = []
        for run in range(args.runs):
            accounts, p50, p99 = pipeline(client, f"p{run}x", args.n)
            runs.append(
                {
                    "limit_per_s": limit_rate(dc, f"l{run}x", args.n),
                    "newuser_per_s": newuser_rate(dc, f"u{run}x", args.n),
                    "naive_per_s": naive_rate(dc, f"v{run}x", args.n),
                    "accounts_per_s": accounts,
                    "p50_ms": p50,
                    "p99_ms": p99,
                }
            )
    finally:
        if client is not None:
            client.close()
        if worker is not None:
            worker.stop()
        dc.close()
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)

    result = {key: round(statistics.median(r[key] for r in runs), 1) for key in runs[0]}
    result.update(
        n=args.n,
        runs=args.runs,
        pipeline_vs_limit=round(result["accounts_per_s"] / result["limit_per_s"], 3),
        pipeline_vs_newuser=round(result["accounts_per_s"] / result["newuser_per_s"], 3),
        per_run=[{key: round(value, 1) for key, value in r.items()} for r in runs],
    )
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
