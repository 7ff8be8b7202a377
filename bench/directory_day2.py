"""Directory day 2: backup and restore of a full domain, replication to a second DC, two DCs provisioning. Prints JSON.

Starts the real services as bench/directory_scale.py does (RabbitMQ with
mutual TLS, a Samba AD DC `dc0` from the entrypoint with its LMDB store sized
for a 5 GiB volume, the worker beside it), creates and enables one account
through the pipeline (`day2-restore`, the one the restored DC must log in),
fills the directory with `--accounts` accounts (default 10 000; the DC stopped,
es4ps_testkit.samba.fill_accounts) and a portal database (SQLite, migrated)
with as many people (es4ps_testkit.portal_fill), then measures:

- `accounts_per_s`: the whole pipeline with one DC (signed tasks with sealed
  passwords through the broker to the worker and its DC, until every result
  event is back; es4ps_testkit.tasks.pipeline), `--n` accounts per run;
- `backup_s`: the steps of the operator's backup Job one after the other, as
  tests/directory/test_backup.py runs them: `es4ps-backup dump-directory`
  (`samba-tool domain backup online` of dc0 over the network), `es4ps-portal
  manage dump_database` (SQLite's online backup API), `es4ps-backup store`
  (manifest, tar, `age` encryption while it streams, written to a volume
  directory); `backup_bytes` is the encrypted archive's size;
- `restore_s`: the restore Job's steps and dc0's first start: `es4ps-backup
  fetch` (read the archive from the volume directory, check its SHA-256,
  decrypt, unpack), `es4ps-backup restore-directory` (`samba-tool domain
  backup restore` into a fresh directory under a new DC name), `es4ps-portal
  manage restore_database` into a fresh portal, then the restored DC started
  by the real entrypoint until an LDAPS simple bind of `day2-restore` with its
  password succeeds on it. Not counted: creating the Job's Pods and volumes in
  a cluster. Each step's time is kept in `backup_steps_s` / `restore_steps_s`;
- `join_s`: a second DC `dc1` joins the full domain (`samba-tool domain join`,
  replicating every object), with its names registered in dc0's DNS zone as a
  joining Pod's DC does (es4ps_testkit.samba.SambaDC with `join=`);
- `replication_s`: an account added on dc0 (one LDAP add carrying its password,
  enabled) until an LDAPS simple bind with that password succeeds on dc1,
  polled every 0.1 s; the median of `--replications` accounts (default 10),
  each added after a random pause of up to one notify interval, so the adds
  fall anywhere between the DC's notify rounds (`replication_max_s`: the
  slowest). What bounds it: Samba's DRS notify interval
  (`dreplsrv:notify_interval`, 5 s by default, kept by the test DCs): dc0's
  replication service looks every 5 s for changes it has not yet announced
  and sends DsReplicaSync to the partners in its list, which pull at once; so
  up to 5 s plus the pull and the bind poll, about 2.5 s on average;
- `replication_first_after_join_s`: the same for the first account, added as
  soon as dc1 has joined, not in the median. dc0 reads its list of partners to
  notify (the repsTo the join wrote) only on its periodic round
  (`dreplsrv:periodic_interval`: 15 s on the test DCs, Samba's default 300 s
  in Pods), and dc1 pulls on its own periodic round: the first changes after a
  join wait for those rounds, later ones only for the notify interval;
- `accounts_per_s_2dc`: the same pipeline with a worker beside each of the two
  DCs consuming the one provisioning queue (dc1's worker does not create OUs or
  groups, as the operator sets it; `tasks_by_worker_2dc` shows both took
  tasks), and `accounts_per_s_2dc_one_worker`: two DCs but only dc0's worker.
  `two_dc_vs_one` is `accounts_per_s_2dc` / `accounts_per_s`. The CPU time of
  the DCs' and workers' processes per account, from /proc
  (`dc_cpu_ms_per_account`, `dc_cpu_ms_per_account_2dc` for both DCs
  together, ...), is counted until every DC holds the run's accounts, so it
  includes replication.

Why two DCs provision faster here (1.4 to 1.6 times in the runs in
docs/performance.md), and what it costs: one DC adds one account at a time (its database has one writer, and
most of an add is the DC deriving the password's hashes and Kerberos keys
inside the add's transaction, about 33 ms of CPU), so the one-DC pipeline
keeps about one of this machine's 2 cores busy. With a worker per DC, each
DC's writer takes about half of the accounts, on the other core. It is not
less work: every add replicates to the other DC (dc0 serves the change, dc1
applies it and rewrites the same index records, without the password
hashing), and the two DCs together spend about 1.5 times the CPU per account
of one DC. So the gain is the idle core, and it ends where the cores do: here
both DCs, both workers and the broker now fill the 2 cores, and a third DC on
this machine would add its replication work and no writer with a core of its
own. `accounts_per_s_2dc_one_worker` shows that replicating to dc1 does not
slow dc0's own adds while a core is free. A second DC is first for
availability (provisioning and logins go on while one DC is down).

Figures are medians over `--runs` runs; `per_run` keeps each run's figures and
every replication sample. With the defaults it takes about 7.5 minutes here.

    .venv/bin/python bench/directory_day2.py [--accounts 10000] [--runs 3] [--n 100] [--replications 10]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import ldb
from es4ps_contract.directory import MANAGED_OU
from es4ps_contract.events import Outcome
from es4ps_contract.tasks import EnableUser
from es4ps_localcluster.processes import wait_until
from es4ps_samba.worker.records import encode_password
from es4ps_testkit.backups import backup_step, write_backup_key
from es4ps_testkit.ca import ThrowawayCA
from es4ps_testkit.cpu import with_cpu_ms
from es4ps_testkit.live_portal import LivePortal
from es4ps_testkit.rabbitmq import RabbitMQ
from es4ps_testkit.registration import ALLOWED_DOMAIN
from es4ps_testkit.samba import SambaDC, fill_accounts, find_account, password_authenticates
from es4ps_testkit.tasks import PASSWORD, TaskClient, binding, create_task, pipeline, run
from es4ps_testkit.worker import ContractKeys, DirectoryWorker
from samba.dsdb import UF_NORMAL_ACCOUNT

VOLUME_BYTES = 5 << 30  # the CRD's default spec.directory.storage.size
RESTORE_USER = "day2-restore"
FILL_PREFIX = "fill"
NOTIFY_INTERVAL_S = 5  # Samba's default dreplsrv:notify_interval, which the test DCs keep
POLL_S = 0.1
BACKUP_STEPS = ("dump_directory", "dump_portal_database", "store")
RESTORE_STEPS = ("fetch", "restore_directory", "restore_portal_database", "start_until_bind")


def portal_with_people(directory: Path, realm: str, people: int) -> LivePortal:
    """A portal's migrated SQLite database holding `people` people (no processes: only `manage`)."""
    portal = LivePortal(directory, {"ES4PS_REALM": realm})
    (directory / "data").mkdir(parents=True, exist_ok=True)
    portal.manage("migrate")
    if people:
        fill = f"fill_users({people}, {ALLOWED_DOMAIN!r}, {FILL_PREFIX!r})"
        portal.manage("shell", "-c", f"from es4ps_testkit.portal_fill import fill_users; {fill}")
    return portal


def timed_s(action) -> tuple[float, object]:
    start = time.monotonic()
    value = action()
    return time.monotonic() - start, value


def backup_once(portal: LivePortal, common: dict[str, str], work: Path, name: str) -> dict:
    """The backup Job's three steps (BACKUP_STEPS): their times and the store step's report."""
    env = {**common, "ES4PS_BACKUP_WORK_DIR": str(work)}
    steps = {}
    steps["dump_directory"], _ = timed_s(lambda: backup_step("dump-directory", env))
    steps["dump_portal_database"], _ = timed_s(lambda: portal.manage("dump_database", str(work / "portal.db")))
    steps["store"], result = timed_s(
        lambda: backup_step("store", {**env, "ES4PS_BACKUP_NAME": name, "ES4PS_BACKUP_DOMAIN": "bench"})
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return {"steps": steps, "report": report}


def restore_once(
    ca: ThrowawayCA, common: dict[str, str], identity: Path, report: dict, base: Path, index: int, accounts: int
) -> dict[str, float]:
    """The restore Job's three steps, then the restored DC started until RESTORE_USER logs in (RESTORE_STEPS):
    their times."""
    fetched = base / f"fetch{index}"
    # A short path: samba's sockets live under the DC's directory and Unix socket paths are short.
    restored = SambaDC(base / f"r{index}", ca, hostname=f"dc0-r{index}", volume_bytes=VOLUME_BYTES)
    restored.directory.mkdir(parents=True)
    restored.admin_password_file.write_text(restored.admin_password + "\n")
    restored.admin_password_file.chmod(0o600)
    portal = LivePortal(base / f"rp{index}", {"ES4PS_REALM": restored.realm})
    (portal.directory / "data").mkdir(parents=True)
    env = {
        **common,
        "ES4PS_BACKUP_WORK_DIR": str(fetched),
        "ES4PS_BACKUP_LOCATION": report["location"],
        "ES4PS_BACKUP_SHA256": report["sha256"],
        "ES4PS_BACKUP_IDENTITY_FILE": str(identity),
        "ES4PS_DC_HOSTNAME": restored.hostname,
        "ES4PS_DATA_DIR": str(restored.data_dir),
        "ES4PS_ADMIN_PASSWORD_FILE": str(restored.admin_password_file),
    }
    steps = {}
    try:
        steps["fetch"], _ = timed_s(lambda: backup_step("fetch", env))
        steps["restore_directory"], _ = timed_s(lambda: backup_step("restore-directory", env))
        steps["restore_portal_database"], _ = timed_s(
            lambda: portal.manage("restore_database", str(fetched / "portal.db"))
        )

        def start_until_bind() -> None:
            restored.start(timeout_s=900)
            wait_until(
                lambda: password_authenticates(restored, RESTORE_USER, PASSWORD),
                300,
                f"{RESTORE_USER} to log in on the restored DC",
                interval_s=POLL_S,
            )

        steps["start_until_bind"], _ = timed_s(start_until_bind)
        # Not timed: the restored DC holds the filled accounts, and the portal its people.
        if accounts and find_account(restored, f"{FILL_PREFIX}{accounts - 1}", attrs=["cn"]) is None:
            raise SystemExit(f"the restored DC lacks {FILL_PREFIX}{accounts - 1}")
        with portal.database() as database:
            people = database.execute("SELECT count(*) FROM accounts_user").fetchone()[0]
        if people < accounts:
            raise SystemExit(f"the restored portal holds {people} people, not {accounts}")
    finally:
        restored.close()
        for path in (fetched, restored.directory, portal.directory):
            shutil.rmtree(path, ignore_errors=True)
    return steps


def replication_seconds(dc0: SambaDC, dc1: SambaDC, prefix: str, count: int, max_pause_s: float) -> list[float]:
    """Per account: from its add on dc0 returning until a bind with its password succeeds on dc1.

    Before each add a pause of up to `max_pause_s`, the same pauses every time.
    """
    samdb = dc0.samdb()
    pauses = random.Random(14)  # noqa: S311 - not a secret: the same pauses every time, so invocations compare
    samples = []
    for i in range(count):
        time.sleep(pauses.uniform(0, max_pause_s))
        name = f"{prefix}{i}"
        samdb.add(
            {
                "dn": f"CN={name},{MANAGED_OU},{dc0.base_dn}",
                "objectClass": "user",
                "sAMAccountName": name,
                "userPrincipalName": f"{name}@{dc0.dns_domain}",
                "userAccountControl": str(UF_NORMAL_ACCOUNT),
                "unicodePwd": encode_password(PASSWORD),
            }
        )
        added = time.monotonic()
        wait_until(
            lambda name=name: password_authenticates(dc1, name, PASSWORD),
            120,
            f"{name} to log in on dc1",
            interval_s=POLL_S,
        )
        samples.append(time.monotonic() - added)
    return samples


def last_added_per_worker(client: TaskClient, prefix: str) -> list[str]:
    """The account each worker added last among those named `prefix`...: once every DC holds these, it holds
    all of them (a DC pulls everything up to its partner's newest change)."""
    last: dict[str, tuple[float, str]] = {}
    for event in client.results.values():
        if event.username.startswith(prefix):
            last[event.worker] = max(last.get(event.worker, (0.0, "")), (event.finished_at, event.username))
    return sorted(name for _, name in last.values())


def wait_until_held(connections: list, base_dn: str, names: list[str]) -> None:
    """Wait until every DC (a SamDB connection to each) holds the accounts `names`."""
    expression = "(|" + "".join(f"(sAMAccountName={ldb.binary_encode(name)})" for name in names) + ")"

    def held() -> bool:
        return all(len(db.search(base_dn, expression=expression, attrs=["cn"])) == len(names) for db in connections)

    wait_until(held, 120, f"{', '.join(names)} on every DC", interval_s=0.5)


def pipeline_runs(
    client: TaskClient, prefix: str, runs: int, n: int, groups: dict[str, list[int]], dcs: list[SambaDC]
) -> list[dict[str, float]]:
    """`runs` pipeline measurements: rate, latencies, CPU per account of each group, tasks per worker.

    The rate ends with the last result event; the CPU window only once every DC
    holds the run's accounts, so it counts each DC's replicated copies too.
    """
    connections = [dc.samdb() for dc in dcs]  # opened outside the CPU window
    measured = []
    for index in range(runs):
        run_prefix = f"{prefix}{index}x"

        def measure(p: str = run_prefix) -> tuple[float, float, float]:
            figures = pipeline(client, p, n)
            wait_until_held(connections, dcs[0].base_dn, last_added_per_worker(client, p))
            return figures

        (rate, p50, p99), cpu = with_cpu_ms(groups, n, measure)
        by_worker = Counter(e.worker for e in client.results.values() if e.username.startswith(run_prefix))
        measured.append(
            {
                "accounts_per_s": rate,
                "p50_ms": p50,
                "p99_ms": p99,
                **{f"{name}_cpu_ms_per_account": value for name, value in cpu.items()},
                **{f"tasks_by_{worker}": count for worker, count in sorted(by_worker.items())},
            }
        )
    return measured


def median_of(runs: list[dict[str, float]], key: str, digits: int = 1) -> float:
    return round(statistics.median(r[key] for r in runs), digits)


def rounded(runs: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{key: round(value, 2) for key, value in r.items()} for r in runs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10000, help="accounts in the domain (default 10000)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement; medians (default 3)")
    parser.add_argument("--n", type=int, default=100, help="accounts per pipeline measurement (default 100)")
    parser.add_argument("--replications", type=int, default=10, help="accounts timed dc0 -> dc1 (default 10)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="es4ps-bench-day2-"))
    ca = ThrowawayCA(base / "ca")
    broker = RabbitMQ(base / "rabbitmq", ca)
    dc0 = SambaDC(base / "dc0", ca, hostname="dc0", volume_bytes=VOLUME_BYTES)
    dc1 = SambaDC(base / "dc1", ca, hostname="dc1", join=dc0, volume_bytes=VOLUME_BYTES)
    workers: list[DirectoryWorker] = []
    client = None
    result: dict[str, object] = {"accounts": args.accounts, "runs": args.runs, "n": args.n}
    per_run: dict[str, object] = {}
    try:
        broker.start()
        dc0.start()
        keys = ContractKeys(base / "keys")
        worker_env = {**broker.worker_env, **keys.worker_env}
        worker0 = DirectoryWorker(
            base / "worker0", {**worker_env, **dc0.worker_env, **keys.result_env("dc0")}, name="dc0"
        )
        workers.append(worker0)
        worker0.start()
        client = TaskClient({**broker.portal_env, **keys.portal_env})
        for task in (create_task(client, RESTORE_USER), EnableUser(RESTORE_USER, **binding(RESTORE_USER))):
            if run(client, task).outcome is not Outcome.SUCCEEDED:
                raise SystemExit(f"could not set up {RESTORE_USER}")

        portal_fill_s, portal = timed_s(lambda: portal_with_people(base / "portal", dc0.realm, args.accounts))
        dc0.stop()
        fill_s, _ = timed_s(lambda: fill_accounts(dc0, FILL_PREFIX, 0, args.accounts))
        result.update(fill_s=round(fill_s, 1), portal_fill_s=round(portal_fill_s, 1))
        dc0.start(timeout_s=300)
        worker0.stop()  # a fresh connection to the restarted DC, as after a DC restart in a Pod
        worker0.start()
        pipeline(client, "warm", 3)
        print(json.dumps({"filled": result}), file=sys.stderr)

        groups = {"dc": dc0.process_groups(), "worker": [worker0.process.pid]}
        one_dc = pipeline_runs(client, "one", args.runs, args.n, groups, [dc0])
        per_run["one_dc"] = rounded(one_dc)
        result.update(
            accounts_per_s=median_of(one_dc, "accounts_per_s"),
            p50_ms=median_of(one_dc, "p50_ms", 0),
            dc_cpu_ms_per_account=median_of(one_dc, "dc_cpu_ms_per_account"),
            worker_cpu_ms_per_account=median_of(one_dc, "worker_cpu_ms_per_account"),
        )
        print(json.dumps({"one_dc": per_run["one_dc"]}), file=sys.stderr)

        key = write_backup_key(base / "backup-key")
        volume = base / "backups"
        volume.mkdir()
        common = {
            **dc0.backup_env,
            "ES4PS_BACKUP_RECIPIENT_FILE": str(key["recipient"]),
            "ES4PS_BACKUP_SIGNING_KEY_FILE": str(key["signing-key"]),
            "ES4PS_BACKUP_VERIFY_KEY_FILE": str(key["verify-key"]),
            "ES4PS_BACKUP_VOLUME_DIR": str(volume),
            "ES4PS_BACKUP_VOLUME_CLAIM": "bench-backups",
            "ES4PS_TERMINATION_LOG": str(base / "termination-log"),
        }
        backups = []
        for index in range(args.runs):
            work = base / f"work{index}"
            backup = backup_once(portal, common, work, f"bench-{index}")
            shutil.rmtree(work)
            restore = restore_once(ca, common, key["identity"], backup["report"], base, index, args.accounts)
            backups.append(
                {
                    "backup_s": sum(backup["steps"].values()),
                    "backup_bytes": backup["report"]["sizeBytes"],
                    "restore_s": sum(restore.values()),
                    **{f"backup_{step}_s": took for step, took in backup["steps"].items()},
                    **{f"restore_{step}_s": took for step, took in restore.items()},
                }
            )
            print(json.dumps({"backup": rounded(backups[-1:])}), file=sys.stderr)
        per_run["backup"] = rounded(backups)
        result.update(
            backup_s=median_of(backups, "backup_s"),
            backup_bytes=int(statistics.median(r["backup_bytes"] for r in backups)),
            restore_s=median_of(backups, "restore_s"),
            backup_steps_s={step: median_of(backups, f"backup_{step}_s") for step in BACKUP_STEPS},
            restore_steps_s={step: median_of(backups, f"restore_{step}_s") for step in RESTORE_STEPS},
        )

        join_s, _ = timed_s(lambda: dc1.start(timeout_s=1800))
        result["join_s"] = round(join_s, 1)
        [first] = replication_seconds(dc0, dc1, "first", 1, 0)
        samples = replication_seconds(dc0, dc1, "repl", args.replications, NOTIFY_INTERVAL_S)
        per_run["replication_s"] = [round(s, 2) for s in samples]
        result.update(
            replication_first_after_join_s=round(first, 2),
            replication_s=round(statistics.median(samples), 2),
            replication_max_s=round(max(samples), 2),
            replication_bound=(
                f"Samba's DRS notify interval (dreplsrv:notify_interval = {NOTIFY_INTERVAL_S} s): dc0 announces "
                "new changes to its partners at most that often, and dc1 pulls at once"
            ),
        )
        print(json.dumps({"replication_s": per_run["replication_s"]}), file=sys.stderr)

        groups = {"dc": dc0.process_groups() + dc1.process_groups(), "worker": [worker0.process.pid]}
        one_worker = pipeline_runs(client, "onew", args.runs, args.n, groups, [dc0, dc1])
        worker1 = DirectoryWorker(
            base / "worker1",
            # The operator lets only dc0's worker create policies' OUs and groups.
            {**worker_env, **dc1.worker_env, **keys.result_env("dc1"), "ES4PS_WORKER_CREATES_CONTAINERS": "0"},
            name="dc1",
        )
        workers.append(worker1)
        worker1.start()
        pipeline(client, "warm2x", 3)
        groups["worker"].append(worker1.process.pid)
        two_dc = pipeline_runs(client, "two", args.runs, args.n, groups, [dc0, dc1])
        per_run.update(two_dc=rounded(two_dc), two_dc_one_worker=rounded(one_worker))
        tasks_by_worker = {
            key[len("tasks_by_") :]: int(statistics.median(r.get(key, 0) for r in two_dc))
            for key in sorted({k for r in two_dc for k in r if k.startswith("tasks_by_")})
        }
        result.update(
            accounts_per_s_2dc=median_of(two_dc, "accounts_per_s"),
            accounts_per_s_2dc_one_worker=median_of(one_worker, "accounts_per_s"),
            two_dc_vs_one=round(median_of(two_dc, "accounts_per_s", 3) / median_of(one_dc, "accounts_per_s", 3), 3),
            p50_ms_2dc=median_of(two_dc, "p50_ms", 0),
            dc_cpu_ms_per_account_2dc=median_of(two_dc, "dc_cpu_ms_per_account"),
            dc_cpu_ms_per_account_2dc_one_worker=median_of(one_worker, "dc_cpu_ms_per_account"),
            worker_cpu_ms_per_account_2dc=median_of(two_dc, "worker_cpu_ms_per_account"),
            tasks_by_worker_2dc=tasks_by_worker,
        )
    finally:
        if client is not None:
            client.close()
        for worker in workers:
            worker.stop()
        dc1.close()
        dc0.close()
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)

    result["per_run"] = per_run
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
