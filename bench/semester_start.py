"""Start of semester: a campus registers through one address on the real node, then confirms. Prints JSON.

Deploys the product on the local cluster's real node exactly as the e2e tests
do (es4ps_testkit.e2e.deploy: images, charts, the example domain Ready, the
portal's Ingress served by Traefik), with the registration limit per client
address raised for the campus case (`spec.portal.rateLimits.register.perAddress`,
`--limit` per hour). Then:

1. `--registrations` people register at a steady `--rate` per second (open
   loop: one starts every 1/rate s whatever the others do), all through
   Traefik from this machine's one address, as a campus behind a NAT;
2. each one's verification mail is taken from the SMTP server and confirmed by
   its link, at the same rate;
3. once the portal has every result, its own task records give the latencies:
   `create_p50_s`, `create_p99_s` (create task recorded and published -> the
   worker's finish time its result event carries: the account exists, disabled;
   Pods and this process share the node's clock) and `enable_p99_s` (the same
   for the enable task that the confirmation publishes).

`offered_per_s`: the rate registrations were sent at; `completed_per_s`:
accounts created per second from the first registration sent to the last
create result; `errors`: registrations or confirmations not accepted, and
tasks that failed or never finished. Goal (issue 17): no errors, and create p99
under 2 s at half the directory's one-add limit (bench/directory_scale.py).
Needs the heavy lock: `flock /tmp/es4ps-heavy.lock .venv/bin/python bench/semester_start.py`.
The cluster is started if none runs and stopped afterwards (ES4PS_KEEP_CLUSTER=1 keeps it).

    .venv/bin/python bench/semester_start.py [--registrations 1000] [--rate 10] [--limit 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from es4ps_devtools import deployment as steps
from es4ps_localcluster import Cluster
from es4ps_localcluster.processes import wait_until
from es4ps_testkit.e2e import Deployment, deploy, platform
from es4ps_testkit.kube import KubeCluster
from es4ps_testkit.registration import ALLOWED_DOMAIN

# What the portal recorded of the bench's accounts' tasks, printed as JSON from inside its Pod.
TASKS_QUERY = """
import json
from es4ps_portal.provisioning.models import ProvisioningTask
rows = ProvisioningTask.objects.filter(user__username__startswith={prefix!r}).values_list(
    "user__username", "operation", "state", "created_at", "finished_at")
print(json.dumps([[u, o, s, c.timestamp(), f.timestamp() if f else None] for u, o, s, c, f in rows]))
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def at_steady_rate(count: int, rate: float, action) -> tuple[list, float]:
    """Start `action(i)` every 1/rate s on a pool (open loop); its results, and the rate actually offered."""
    started: list[float] = []
    lock = threading.Lock()

    def timed(i: int):
        with lock:
            started.append(time.monotonic())
        return action(i)

    with ThreadPoolExecutor(max_workers=64) as pool:
        begin = time.monotonic()
        futures = []
        for i in range(count):
            delay = begin + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(timed, i))
        results = [future.result() for future in futures]
    span = max(started) - min(started)
    return results, (count - 1) / span if span > 0 else float(count)


def portal_tasks(prefix: str) -> list[list]:
    output = steps.run(
        "kubectl",
        "exec",
        "-n",
        steps.DOMAIN_NAMESPACE,
        "acme-portal-0",
        "-c",
        "portal",
        "--",
        "es4ps-portal",
        "manage",
        "shell",
        "-c",
        TASKS_QUERY.format(prefix=prefix),
    )
    return json.loads(output.strip().splitlines()[-1])


def measure(deployment: Deployment, registrations: int, rate: float) -> dict[str, object]:
    prefix = f"sem{uuid.uuid4().hex[:4]}x"
    names = [f"{prefix}{i}" for i in range(registrations)]

    def register(i: int) -> tuple[bool, float]:
        person = deployment.person()
        try:
            sent = time.time()
            response = person.register(names[i], f"{names[i]}@{ALLOWED_DOMAIN}")
            return response.status_code == 200 and "/status/" in response.url, sent
        finally:
            person.http.close()

    registered, offered = at_steady_rate(registrations, rate, register)
    first_sent = min(sent for _ok, sent in registered)

    def confirm(i: int) -> bool:
        try:
            mail = deployment.mail.wait_for(f"{names[i]}@{ALLOWED_DOMAIN}", timeout_s=300)
        except AssertionError:  # no mail in time
            return False
        person = deployment.person()
        try:
            return person.confirm_link(mail.link("/verify/")).status_code == 200
        finally:
            person.http.close()

    confirmed, _ = at_steady_rate(registrations, rate, confirm)

    def all_finished() -> list[list] | None:
        tasks = portal_tasks(prefix)
        enables = [t for t in tasks if t[1] == "enable_user"]
        return tasks if len(enables) >= sum(confirmed) and all(t[2] != "queued" for t in tasks) else None

    try:
        tasks = wait_until(all_finished, 600, "every task's result in the portal", interval_s=5)
    except TimeoutError:
        tasks = portal_tasks(prefix)
    done = {op: [t for t in tasks if t[1] == op and t[2] == "done"] for op in ("create_user", "enable_user")}
    create = [t[4] - t[3] for t in done["create_user"]]
    enable = [t[4] - t[3] for t in done["enable_user"]]
    last_created = max(t[4] for t in done["create_user"]) if create else first_sent
    not_done = registrations - len(done["create_user"]) + sum(confirmed) - len(done["enable_user"])
    return {
        "offered_per_s": round(offered, 2),
        "completed_per_s": round(len(create) / (last_created - first_sent), 2) if create else 0.0,
        "create_p50_s": round(statistics.median(create), 3) if create else None,
        "create_p99_s": round(percentile(create, 0.99), 3) if create else None,
        "enable_p99_s": round(percentile(enable, 0.99), 3) if enable else None,
        "errors": sum(not ok for ok, _sent in registered) + sum(not ok for ok in confirmed) + not_done,
        "registered": sum(ok for ok, _sent in registered),
        "confirmed": sum(confirmed),
        "first_sent_at": datetime.fromtimestamp(first_sent).isoformat(timespec="seconds"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0, help="registrations (and confirmations) per second")
    parser.add_argument("--limit", type=int, default=3000, help="registrations per client address per hour")
    parser.add_argument("--runs", type=int, default=1, help="runs on the one deployment; medians are reported")
    args = parser.parse_args()

    local = Cluster()
    started_cluster = local.ensure_up(node="real")
    deployment = None
    runs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            kube, where = platform(lambda: KubeCluster(local.kubeconfig))
            deployment = deploy(
                kube,
                where,
                Path(tmp),
                **{"portal.rateLimits.register.perAddress": {"requests": args.limit, "windowSeconds": 3600}},
            )
            for _ in range(args.runs):
                runs.append(measure(deployment, args.registrations, args.rate))
                print(json.dumps(runs[-1]), file=sys.stderr)
    finally:
        if deployment is not None:
            deployment.close()
        if started_cluster and os.environ.get("ES4PS_KEEP_CLUSTER") != "1":
            local.down()
    numeric = [key for key, value in runs[0].items() if isinstance(value, int | float)]
    result = {key: statistics.median(r[key] for r in runs if r[key] is not None) for key in numeric}
    result.update(registrations=args.registrations, rate=args.rate, limit_per_hour=args.limit, per_run=runs)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
