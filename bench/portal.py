"""Portal speed: registrations the portal accepts (validated, recorded with their task, mailed) per second. Prints JSON.

Starts the real pieces the registration path touches, as the tests do:
RabbitMQ with mutual TLS, the SMTP server that catches the mails, and the
portal itself (`es4ps-portal serve`: gunicorn with `--workers` processes, SQLite
on its data directory; `es4ps-portal consume`, whose outbox relay publishes the
tasks). No directory worker runs: the figure is what the portal hands to the
broker, not what the DC applies (bench/provisioning.py).

Each of `--concurrency` clients repeats what a browser does: load the form
(for its CSRF token), then send it. `registrations_per_s` counts completed
registrations over the wall time of a run; `p50_ms`/`p99_ms` are the latency
of the registration request itself (the POST, answered with the redirect to
the status page once the registration and its task are committed to the
outbox and the mail is sent; the relay publishes meanwhile, and
`tasks_published` counts the queue once the outbox is empty). Every client
presents its own address to the portal (X-Forwarded-For, as the Ingress
would), so rate limits do not interfere. Figures are medians
over the runs; `per_run` keeps each run's numbers.

    .venv/bin/python bench/portal.py [--registrations 200] [--concurrency 8] [--workers 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from es4ps_contract.tasks import PROVISIONING_QUEUE
from es4ps_localcluster.processes import wait_until
from es4ps_testkit.ca import ThrowawayCA
from es4ps_testkit.live_portal import LivePortal
from es4ps_testkit.mail import MailCatcher
from es4ps_testkit.metrics import scrape
from es4ps_testkit.portal_client import PortalClient
from es4ps_testkit.rabbitmq import RabbitMQ
from es4ps_testkit.registration import form
from es4ps_testkit.worker import ContractKeys

_serial = itertools.count()
_serial_lock = threading.Lock()


def next_identity() -> tuple[str, str]:
    """A fresh username and client address for one registration."""
    with _serial_lock:
        n = next(_serial)
    return f"bench{n}", f"10.{n // 62500 % 250}.{n // 250 % 250}.{n % 250 + 1}"


def register_once(portal_url: str) -> float:
    """One person's registration; returns the POST's latency in seconds (raises if it was not accepted)."""
    username, address = next_identity()
    client = PortalClient(portal_url, client_ip=address)
    data = {**form(username), "csrfmiddlewaretoken": client.csrf_token("/register/")}
    start = time.perf_counter()
    response = client.http.post(f"{portal_url}/register/", data=data, allow_redirects=False, timeout=60)
    latency = time.perf_counter() - start
    client.http.close()
    if response.status_code != 302:
        raise RuntimeError(f"registration of {username} answered {response.status_code}")
    return latency


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(portal_url: str, registrations: int, concurrency: int) -> dict:
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(lambda _: register_once(portal_url), range(registrations)))
    elapsed = time.perf_counter() - start
    return {
        "registrations_per_s": round(registrations / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=200, help="registrations per run")
    parser.add_argument("--concurrency", type=int, default=8, help="clients registering at once")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="es4ps-bench-portal-"))
    broker = RabbitMQ(directory / "rabbitmq", ThrowawayCA(directory / "ca"))
    mail = MailCatcher()
    portal = None
    try:
        broker.start()
        mail.start()
        keys = ContractKeys(directory / "keys")
        env = {**broker.portal_env, **keys.portal_env, **mail.portal_env, "ES4PS_REALM": "BENCH.TEST"}
        portal = LivePortal(directory / "portal", env, workers=args.workers)
        portal.start()
        run(portal.url, 20, args.concurrency)  # warm-up: connections, caches
        per_run = [run(portal.url, args.registrations, args.concurrency) for _ in range(args.runs)]
        wait_until(
            lambda: scrape(portal.consumer_metrics_url).value("es4ps_portal_outbox_tasks") == 0,
            120,
            "the outbox relay publishing every task",
        )
        published = broker.queue_depth(PROVISIONING_QUEUE)
    finally:
        if portal is not None:
            portal.stop()
        mail.stop()
        broker.stop()
        shutil.rmtree(directory, ignore_errors=True)

    result = {key: statistics.median(r[key] for r in per_run) for key in per_run[0]}
    result.update(
        concurrency=args.concurrency,
        gunicorn_workers=args.workers,
        registrations_per_run=args.registrations,
        runs=args.runs,
        tasks_published=published,
        per_run=per_run,
    )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
