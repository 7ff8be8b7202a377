"""Directory scale: the provisioning pipeline, the one-add limit and LDAP binds as the domain grows. Prints JSON.

Starts the real services as bench/provisioning.py does (RabbitMQ with mutual
TLS, a Samba AD DC from the entrypoint with its LMDB store sized for a 5 GiB
volume, the worker), then for each size (default 0, 10 000, 50 000 accounts in
the domain):

- fills the domain up to that size: the DC is stopped and accounts (disabled,
  no password) are written through its own database modules in batch
  transactions (es4ps_testkit.samba.fill_accounts); `fill_s_to_<size>` is the
  time that took, `fill_per_s_to_<size>` its rate;
- measures, `--runs` times, the whole pipeline (`accounts_per_s_at_<size>`:
  signed, sealed tasks through the broker to the worker and back, as
  bench/provisioning.py) and the one-add limit at that size
  (`limit_per_s_at_<size>`: one LDAP add per account carrying the password and
  the disabled flag), `--n` accounts each;
- times `--binds` simple LDAPS binds of one enabled account over one connection
  (`bind_p50_ms_at_<size>`, `bind_p99_ms_at_<size>`): what the portal's login does;
- times as many searches for one account by its name, as the worker makes before
  every change (`lookup_p50_ms_at_<size>`; es4ps_samba.worker.managed_ou's filter, over LDAP);
- counts the CPU time the DC's processes spend per one-add account
  (`dc_cpu_ms_per_add_at_<size>`) and the DC and the worker per pipeline account
  (`pipeline_dc_cpu_ms_at_<size>`, `worker_cpu_ms_at_<size>`), from /proc: unlike the
  rates, these hardly move with what else the shared machine runs.

Figures are medians over the runs. Goals (issue 17): the pipeline keeps at least
95 % of the limit at every size (`pipeline_vs_limit_at_<size>`), and the rate at
the largest size is at least 60 % of the rate at 0 (`rate_<largest>_vs_0`).

    .venv/bin/python bench/directory_scale.py [--sizes 0,10000,50000] [--n 100] [--runs 3] [--binds 300]
"""

from __future__ import annotations

import argparse
import json
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ldap3
import ldb
from es4ps_contract.directory import MANAGED_OU
from es4ps_contract.events import Outcome
from es4ps_contract.tasks import EnableUser
from es4ps_testkit.ca import ThrowawayCA
from es4ps_testkit.cpu import with_cpu_ms
from es4ps_testkit.rabbitmq import RabbitMQ
from es4ps_testkit.samba import SambaDC, fill_accounts
from es4ps_testkit.tasks import PASSWORD, TaskClient, binding, create_task, pipeline, run
from es4ps_testkit.worker import ContractKeys, DirectoryWorker
from provisioning import limit_rate  # bench/provisioning.py: the same measurement

VOLUME_BYTES = 5 << 30  # the CRD's default spec.directory.storage.size
BIND_USER = "scale-bind"


def size_label(size: int) -> str:
    return f"{size // 1000}k" if size >= 1000 else str(size)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def bind_latencies_ms(dc: SambaDC, count: int) -> list[float]:
    """`count` simple binds as BIND_USER (by UPN, as the portal binds) over one LDAPS connection."""
    tls = ldap3.Tls(ca_certs_file=str(dc.ca_file), validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(dc.address, port=636, use_ssl=True, tls=tls, connect_timeout=5)
    user = f"{BIND_USER}@{dc.dns_domain}"
    connection = ldap3.Connection(server, user=user, password=PASSWORD)
    latencies = []
    try:
        connection.open()
        for _ in range(count):
            start = time.perf_counter()
            if not connection.rebind(user=user, password=PASSWORD):
                raise SystemExit(f"the bind as {user} failed: {connection.result}")
            latencies.append((time.perf_counter() - start) * 1000)
    finally:
        connection.unbind()
    return latencies


def lookup_latencies_ms(dc: SambaDC, count: int, accounts: int) -> list[float]:
    """`count` searches for an account by sAMAccountName in the managed OU, the worker's filter."""
    samdb = dc.samdb()
    latencies = []
    for i in range(count):
        name = f"fill{i * 7919 % accounts}" if accounts else BIND_USER
        start = time.perf_counter()
        found = samdb.search(
            base=f"{MANAGED_OU},{dc.base_dn}",
            scope=ldb.SCOPE_SUBTREE,
            expression=f"(&(objectClass=user)(sAMAccountName={ldb.binary_encode(name)}))",
            attrs=["userAccountControl", "adminDescription"],
        )
        latencies.append((time.perf_counter() - start) * 1000)
        if len(found) != 1:
            raise SystemExit(f"the search for {name} found {len(found)} accounts")
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,10000,50000", help="accounts in the domain at each point")
    parser.add_argument("--n", type=int, default=100, help="accounts per measurement (default 100)")
    parser.add_argument("--runs", type=int, default=3, help="runs per size; medians are reported (default 3)")
    parser.add_argument("--binds", type=int, default=300, help="binds timed per size (default 300)")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))

    base = Path(tempfile.mkdtemp(prefix="es4ps-bench-scale-"))
    ca = ThrowawayCA(base / "ca")
    broker, dc = RabbitMQ(base / "rabbitmq", ca), SambaDC(base / "samba", ca, volume_bytes=VOLUME_BYTES)
    worker = client = None
    result: dict[str, object] = {"store": "mdb", "volume_bytes": VOLUME_BYTES, "n": args.n, "runs": args.runs}
    per_size: dict[str, list[dict[str, float]]] = {}
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
        for task in (create_task(client, BIND_USER), EnableUser(BIND_USER, **binding(BIND_USER))):
            if run(client, task).outcome is not Outcome.SUCCEEDED:
                raise SystemExit(f"could not set up {BIND_USER}")
        pipeline(client, "warm", 3)  # the worker's first task opens its connection
        filled = 0
        for size in sizes:
            label = size_label(size)
            if size > filled:
                dc.stop()
                start = time.monotonic()
                fill_accounts(dc, "fill", filled, size - filled)
                took = time.monotonic() - start
                result[f"fill_s_to_{label}"] = round(took, 1)
                result[f"fill_per_s_to_{label}"] = round((size - filled) / took, 1)
                filled = size
                dc.start(timeout_s=300)
                worker.stop()  # a fresh connection to the restarted DC, as after a DC restart in a Pod
                worker.start()
                pipeline(client, f"warm{label}x", 3)
            runs = []
            dc_groups = dc.process_groups()
            for run_index in range(args.runs):
                (accounts, _p50, _p99), pipeline_cpu = with_cpu_ms(
                    {"dc": dc_groups, "worker": [worker.process.pid]},
                    args.n,
                    lambda prefix=f"p{label}r{run_index}x": pipeline(client, prefix, args.n),
                )
                limit, limit_cpu = with_cpu_ms(
                    {"dc": dc_groups},
                    args.n,
                    lambda prefix=f"l{label}r{run_index}x": limit_rate(dc, prefix, args.n),
                )
                runs.append(
                    {
                        "accounts_per_s": accounts,
                        "limit_per_s": limit,
                        "dc_cpu_ms_per_add": limit_cpu["dc"],
                        "pipeline_dc_cpu_ms": pipeline_cpu["dc"],
                        "worker_cpu_ms": pipeline_cpu["worker"],
                    }
                )
            per_size[label] = [{key: round(value, 1) for key, value in r.items()} for r in runs]
            accounts = statistics.median(r["accounts_per_s"] for r in runs)
            limit = statistics.median(r["limit_per_s"] for r in runs)
            binds = bind_latencies_ms(dc, args.binds)
            lookups = lookup_latencies_ms(dc, args.binds, filled)
            result[f"accounts_per_s_at_{label}"] = round(accounts, 1)
            result[f"limit_per_s_at_{label}"] = round(limit, 1)
            result[f"pipeline_vs_limit_at_{label}"] = round(accounts / limit, 3)
            for key in ("dc_cpu_ms_per_add", "pipeline_dc_cpu_ms", "worker_cpu_ms"):
                result[f"{key}_at_{label}"] = round(statistics.median(r[key] for r in runs), 1)
            result[f"bind_p50_ms_at_{label}"] = round(statistics.median(binds), 2)
            result[f"bind_p99_ms_at_{label}"] = round(percentile(binds, 0.99), 2)
            result[f"lookup_p50_ms_at_{label}"] = round(statistics.median(lookups), 2)
            result["database_bytes_at_" + label] = sum(
                p.stat().st_size for p in (dc.data_dir / "private" / "sam.ldb.d").glob("*.ldb")
            )
            print(json.dumps({label: {k: v for k, v in result.items() if k.endswith(label)}}), file=sys.stderr)
    finally:
        if client is not None:
            client.close()
        if worker is not None:
            worker.stop()
        dc.close()
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)

    first, last = size_label(sizes[0]), size_label(sizes[-1])
    result[f"rate_{last}_vs_{first}"] = round(
        result[f"accounts_per_s_at_{last}"] / result[f"accounts_per_s_at_{first}"], 3
    )
    result["per_run"] = per_size
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
