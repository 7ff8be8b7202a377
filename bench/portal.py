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
the status page once the form is left for the consumer, its password
sealed; the consumer makes the registrations, queues their mails and tasks,
and its relays send and publish meanwhile; `tasks_published` counts the
queue once every registration is made and the outbox is empty). Every client
presents its own address to the portal (X-Forwarded-For, as the Ingress
would), so rate limits do not interfere. Figures are medians
over the runs; `per_run` keeps each run's numbers.

`--one-address` is the campus case instead: every registration comes from one
address (a school lab behind NAT) under the shipped rate limits;
`refused` counts the ones the limits turned away and `elapsed_s` says whether
a class of 300 gets through within 10 minutes.

    .venv/bin/python bench/portal.py [--registrations 200] [--concurrency 8] [--workers 2] [--runs 3]
    .venv/bin/python bench/portal.py --one-address --registrations 300 --runs 1
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from es4ps_contract.tasks import PROVISIONING_QUEUE
from es4ps_localcluster.processes import wait_until
from es4ps_testkit.metrics import scrape
from es4ps_testkit.portal_client import PortalClient
from es4ps_testkit.registration import form
from es4ps_testkit.standalone_portal import standalone_portal

_serial = itertools.count()
_serial_lock = threading.Lock()


# The campus case: everyone behind one NAT address.
SHARED_ADDRESS = "203.0.113.7"


def next_identity(one_address: bool = False) -> tuple[str, str]:
    """A fresh username and a client address for one registration (its own, or the shared one)."""
    with _serial_lock:
        n = next(_serial)
    return f"bench{n}", SHARED_ADDRESS if one_address else f"10.{n // 62500 % 250}.{n // 250 % 250}.{n % 250 + 1}"


def register_once(portal_url: str, one_address: bool = False, keep_client: bool = False):
    """One person's registration; its POST's latency in seconds, None when the rate limits refused it,
    with `keep_client` also the person's browser session (which follows the new account's status).

    Anything else than accepted or rate-limited raises.
    """
    username, address = next_identity(one_address)
    client = PortalClient(portal_url, client_ip=address)
    data = {**form(username), "csrfmiddlewaretoken": client.csrf_token("/register/")}
    start = time.perf_counter()
    response = client.http.post(f"{portal_url}/register/", data=data, allow_redirects=False, timeout=60)
    latency = time.perf_counter() - start
    if response.status_code == 429:
        client.http.close()
        return None
    if response.status_code != 302:
        raise RuntimeError(f"registration of {username} answered {response.status_code}")
    if keep_client:
        return latency, client
    client.http.close()
    return latency


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(portal_url: str, registrations: int, concurrency: int, one_address: bool = False) -> dict:
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(lambda _: register_once(portal_url, one_address), range(registrations)))
    elapsed = time.perf_counter() - start
    latencies = [latency for latency in answers if latency is not None]
    return {
        "registrations_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
        "completed": len(latencies),
        "refused": len(answers) - len(latencies),
        "elapsed_s": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=200, help="registrations per run")
    parser.add_argument("--concurrency", type=int, default=8, help="clients registering at once")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--one-address", action="store_true", help="every registration from one address")
    args = parser.parse_args()

    with standalone_portal("es4ps-bench-portal-", args.workers) as services:
        portal, broker = services.portal, services.broker
        warm_up = run(portal.url, 20, args.concurrency)  # connections, caches (each from its own address)
        per_run = [run(portal.url, args.registrations, args.concurrency, args.one_address) for _ in range(args.runs)]
        accepted = warm_up["completed"] + sum(r["completed"] for r in per_run)

        def all_made_and_published() -> bool:
            consumer = scrape(portal.consumer_metrics_url)
            made = consumer.value("es4ps_portal_registration_requests_total")
            return made == accepted and consumer.value("es4ps_portal_outbox_tasks") == 0

        wait_until(all_made_and_published, 300, "the consumer making every registration and publishing its task")
        published = broker.queue_depth(PROVISIONING_QUEUE)

    result = {key: statistics.median(r[key] for r in per_run) for key in per_run[0] if per_run[0][key] is not None}
    result.update(
        concurrency=args.concurrency,
        gunicorn_workers=args.workers,
        registrations_per_run=args.registrations,
        one_address=args.one_address,
        runs=args.runs,
        tasks_published=published,
        per_run=per_run,
    )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
