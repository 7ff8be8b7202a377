"""Portal scale: the pages people and staff use, with 50 000 people in the portal's database. Prints JSON.

For each database (SQLite on the data directory, and PostgreSQL: a throwaway
Debian server from es4ps_testkit.postgres), starts the real portal processes as
bench/portal.py does (RabbitMQ with mutual TLS, the SMTP catcher,
`es4ps-portal serve`), fills its database with `--users` people as
registrations leave them (es4ps_testkit.portal_fill: most verified with their
tasks, one in twenty unverified), then, `--runs` times:

- registers `--registrations` new people one after the other, each from its
  own address (`register_p50_ms`, `register_p99_ms`: the POST, as bench/portal.py);
- loads each one's status page right after (`status_p99_ms`);
- signs in as staff and loads the admin's user list (`admin_list_p99_ms`) and
  a search for one person by part of the name (`admin_search_p99_ms`),
  `--requests` times each.

Keys are prefixed with the database (`sqlite_register_p99_ms`,
`postgresql_admin_search_p99_ms`, ...); figures are medians over the runs.
`--portal-source DIR` runs the portal from another checkout (e.g. the commit
before a fix), for a before/after comparison.

    .venv/bin/python bench/portal_scale.py [--users 50000] [--databases sqlite,postgresql] [--runs 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from es4ps_testkit.ca import ThrowawayCA
from es4ps_testkit.live_portal import LivePortal
from es4ps_testkit.mail import MailCatcher
from es4ps_testkit.postgres import PostgreSQL
from es4ps_testkit.rabbitmq import RabbitMQ
from es4ps_testkit.registration import ALLOWED_DOMAIN
from es4ps_testkit.worker import ContractKeys
from portal import percentile, register_once  # bench/portal.py: the same registration

_people = itertools.count()


def timed_ms(action) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def expect(response, status: int = 200):
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.url} answered {response.status_code}")
    return response


def one_run(portal: LivePortal, registrations: int, requests: int) -> dict[str, float]:
    register, status = [], []
    for _ in range(registrations):
        latency_s, client = register_once(portal.url, keep_client=True)
        register.append(latency_s * 1000)
        status.append(timed_ms(lambda client=client: expect(client.get("/status/"))))
        client.http.close()
    staff = portal.client(client_ip=f"10.250.{next(_people) % 250}.1")
    signed_in = portal.sign_in_staff(staff)
    expect(signed_in)
    if "/admin/login/" in signed_in.url:
        raise RuntimeError("the staff login to the admin failed")
    listing = [timed_ms(lambda: expect(staff.get("/admin/accounts/user/"))) for _ in range(requests)]
    search = [
        timed_ms(lambda i=i: expect(staff.get(f"/admin/accounts/user/?q=Person{i * 997 % 50000}")))
        for i in range(requests)
    ]
    staff.http.close()
    return {
        "register_p50_ms": statistics.median(register),
        "register_p99_ms": percentile(register, 0.99),
        "status_p99_ms": percentile(status, 0.99),
        "admin_list_p99_ms": percentile(listing, 0.99),
        "admin_search_p99_ms": percentile(search, 0.99),
    }


def measure(database: str, args, broker: RabbitMQ, env: dict[str, str], base: Path) -> dict[str, object]:
    server = None
    portal = None
    env = dict(env)
    if args.portal_source:
        env["PYTHONPATH"] = str(Path(args.portal_source).resolve() / "images" / "django")
    try:
        if database == "postgresql":
            server = PostgreSQL(base / "postgres", settings={"max_connections": "100"})
            server.start()
            env["ES4PS_DATABASE_URL"] = server.create_database("portal")
        portal = LivePortal(base / f"portal-{database}", env, workers=args.workers)
        portal.start()
        start = time.monotonic()
        portal.manage(
            "shell",
            "-c",
            f"from es4ps_testkit.portal_fill import fill_users; fill_users({args.users}, {ALLOWED_DOMAIN!r})",
        )
        fill_s = time.monotonic() - start
        one_run(portal, 10, 5)  # warm-up: connections, caches, the staff session
        runs = [one_run(portal, args.registrations, args.requests) for _ in range(args.runs)]
    finally:
        if portal is not None:
            portal.stop()
        if server is not None:
            server.close()
    result: dict[str, object] = {f"{database}_{k}": round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}
    result[f"{database}_fill_s"] = round(fill_s, 1)
    result[f"{database}_per_run"] = [{k: round(v, 1) for k, v in r.items()} for r in runs]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50000, help="people in the database (default 50000)")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--registrations", type=int, default=100, help="registrations per run (default 100)")
    parser.add_argument("--requests", type=int, default=50, help="admin list and search requests per run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--portal-source", help="a checkout whose portal code to run instead of this one")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="es4ps-bench-portal-scale-"))
    broker = RabbitMQ(base / "rabbitmq", ThrowawayCA(base / "ca"))
    mail = MailCatcher()
    result: dict[str, object] = {"users": args.users, "runs": args.runs, "registrations_per_run": args.registrations}
    try:
        broker.start()
        mail.start()
        keys = ContractKeys(base / "keys")
        env = {**broker.portal_env, **keys.portal_env, **mail.portal_env, "ES4PS_REALM": "BENCH.TEST"}
        for database in args.databases.split(","):
            result.update(measure(database, args, broker, env, base))
            print(json.dumps({k: v for k, v in result.items() if k.startswith(database)}), file=sys.stderr)
    finally:
        mail.stop()
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
