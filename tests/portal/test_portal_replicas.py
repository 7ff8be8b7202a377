"""Two portal replicas sharing one PostgreSQL database (`portal.databaseURLSecretRef`), as real processes.

Both replicas (`es4ps-portal serve` and `consume` each, one Django secret key,
as the operator's replicas share one Secret) start at the same moment on an
empty database: one migrates, the other waits for it. People register through
either and confirm through the other; the rate limits count across both (the
cache is the database's); a person's requests at once for the last computer
their policy allows, through both, pre-stage exactly one; and with the broker
away, both relays publish the waiting tasks exactly once each, in the order
they were written.

The replicas have a broker and a worker of their own (on the session's DC), as
a domain has: the session's live portal consumes the session broker's result
queue, and would take (and drop) the replicas' results there.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from es4ps_localcluster.processes import wait_until
from es4ps_testkit import ServiceError
from es4ps_testkit.domains import portal_spec_env
from es4ps_testkit.live_portal import LivePortal
from es4ps_testkit.metrics import scrape
from es4ps_testkit.plugins.services import started
from es4ps_testkit.rabbitmq import RabbitMQ
from es4ps_testkit.registration import ALLOWED_DOMAIN, GOOD_PASSWORD, unique_client_ip
from es4ps_testkit.worker import DirectoryWorker

pytestmark = pytest.mark.services

RESET_LIMIT_PER_ADDRESS = 3
# People at computers.<allowed domain> may pre-stage this many computers of their own.
COMPUTERS_DOMAIN = f"computers.{ALLOWED_DOMAIN}"
COMPUTERS_PER_PERSON = 2
REQUESTS_AT_ONCE = 6


@pytest.fixture(scope="module")
def domain_broker(tmp_path_factory, test_ca):
    broker = started(RabbitMQ(tmp_path_factory.mktemp("replicas-broker"), test_ca))
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def domain_worker(tmp_path_factory, domain_broker, worker_env, contract_keys):
    state = tmp_path_factory.mktemp("replicas-worker-state")
    env = {
        **worker_env,
        **domain_broker.worker_env,
        **contract_keys.result_env("replicas-worker"),
        "ES4PS_WORKER_STATE_DIR": str(state),
    }
    worker = started(DirectoryWorker(tmp_path_factory.mktemp("replicas-worker"), env, name="replicas-worker"))
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, postgres, portal_env, domain_broker, domain_worker, mail_catcher):
    database_url = postgres.create_database("portal_replicas")
    # Every limit as the domain's defaults give it (the portal has none of its own), resets per address lower.
    rate_limits = json.loads(portal_spec_env()["ES4PS_RATE_LIMITS"])
    rate_limits["reset"]["perAddress"] = {"requests": RESET_LIMIT_PER_ADDRESS, "windowSeconds": 3600}
    env = {
        **portal_env,
        **domain_broker.portal_env,
        **mail_catcher.portal_env,
        "ES4PS_DATABASE_URL": database_url,
        "ES4PS_RATE_LIMITS": json.dumps(rate_limits),
        "ES4PS_POLICIES": json.dumps(
            [{"emailDomain": COMPUTERS_DOMAIN, "computers": {"perPerson": COMPUTERS_PER_PERSON}}]
        ),
    }
    secret_key = secrets.token_urlsafe(50)
    portals = [LivePortal(tmp_path_factory.mktemp(f"replica{i}"), env, secret_key=secret_key) for i in range(2)]
    try:
        with ThreadPoolExecutor(2) as pool:  # at once, as a StatefulSet with podManagementPolicy Parallel
            list(pool.map(LivePortal.start, portals))
    except ServiceError as exc:
        for portal in portals:
            portal.stop()
        pytest.fail(str(exc), pytrace=False)
    yield portals
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(LivePortal.stop, portals))


def test_replicas_started_together_migrate_once(replicas, postgres):
    applied = ["Applying accounts.0001_initial" in portal.serve_log.read_text() for portal in replicas]
    assert sorted(applied) == [False, True]
    with postgres.connect("portal_replicas") as database:
        (duplicates,) = database.execute(
            "SELECT COUNT(*) FROM (SELECT app, name FROM django_migrations GROUP BY app, name HAVING COUNT(*) > 1) d"
        ).fetchone()
    assert duplicates == 0


def test_people_register_through_one_replica_and_confirm_through_the_other(replicas, mail_catcher, username):
    people = []
    for i, (registers_at, confirms_at) in enumerate([(0, 1), (1, 0)]):
        name = f"{username}r{i}"
        person = replicas[registers_at].client(unique_client_ip())
        assert person.register(name, f"{name}@{ALLOWED_DOMAIN}").url.endswith("/status/")
        link = mail_catcher.wait_for(f"{name}@{ALLOWED_DOMAIN}").link("/verify/")
        other_device = replicas[confirms_at].client(unique_client_ip())
        assert other_device.confirm_link(link).url.endswith("/status/")
        people.append(other_device)
    for person in people:
        person.wait_for_status(lambda s: s["state"] == "ready", timeout_s=90)


def test_rate_limits_count_across_replicas(replicas, postgres):
    address = unique_client_ip()
    one, other = replicas[0].client(address), replicas[1].client(address)
    answers = [
        client.post("/password/reset/", {"email": f"nobody{i}@{ALLOWED_DOMAIN}"}).status_code
        for i, client in enumerate([one, other, one, other])
    ]
    assert answers == [200] * RESET_LIMIT_PER_ADDRESS + [429]
    with postgres.connect("portal_replicas") as database:
        (counters,) = database.execute(
            "SELECT COUNT(*) FROM es4ps_cache WHERE cache_key LIKE %s", ["%rl:reset%"]
        ).fetchone()
    assert counters >= 1


def test_requests_at_once_for_the_last_computer_through_both_replicas_prestage_exactly_one(
    replicas, mail_catcher, postgres, username
):
    name = f"{username}pc"
    person = replicas[0].ready_person(mail_catcher, name, domain=COMPUTERS_DOMAIN)
    assert person.login(name, GOOD_PASSWORD).url.endswith("/account/")
    computer_names = ["RACE" + uuid.uuid4().hex[:8].upper() for _ in range(REQUESTS_AT_ONCE + 1)]
    first = person.post("/account/computers/", {"name": computer_names[0]}, form_page="/account/")
    assert 'class="join-password"' in first.text  # one place left
    # The person's session in several tabs, through either replica (one secret key, one session table).
    tabs = [replicas[index % 2].client(unique_client_ip()) for index in range(REQUESTS_AT_ONCE)]
    for tab in tabs:
        tab.http.cookies.update(person.http.cookies)
    tokens = [tab.csrf_token("/account/") for tab in tabs]
    start = threading.Barrier(REQUESTS_AT_ONCE)

    def prestage(index: int) -> str:
        start.wait()
        data = {"name": computer_names[index + 1]}
        return tabs[index].post("/account/computers/", data, form_page="/account/", token=tokens[index]).text

    with ThreadPoolExecutor(REQUESTS_AT_ONCE) as pool:
        answers = list(pool.map(prestage, range(REQUESTS_AT_ONCE)))

    assert sum('class="join-password"' in answer for answer in answers) == 1
    assert sum("your policy allows 2." in answer for answer in answers) == REQUESTS_AT_ONCE - 1
    with postgres.connect("portal_replicas") as database:
        (owned,) = database.execute(
            "SELECT COUNT(*) FROM provisioning_computer c JOIN accounts_user u ON c.owner_id = u.id"
            " WHERE u.username = %s",
            [name],
        ).fetchone()
    assert owned == COMPUTERS_PER_PERSON


def test_with_the_broker_away_both_relays_publish_each_waiting_task_once_and_in_order(
    replicas, domain_broker, domain_worker, mail_catcher, postgres, username
):
    people = {f"{username}b{i}": replicas[i % 2].client(unique_client_ip()) for i in range(10)}
    consumers = [portal.consumer_metrics_url for portal in replicas]

    def published() -> float:
        # The relays also ask for the domain's computers now and then (report_computers): not counted here.
        return sum(
            scrape(url).value("es4ps_portal_tasks_published_total", operation=operation)
            for url in consumers
            for operation in ("create_user", "enable_user")
        )

    def unfinished() -> int:
        with postgres.connect("portal_replicas") as database:
            (count,) = database.execute(
                "SELECT COUNT(*) FROM accounts_provisioningtask WHERE state = 'queued' AND held = false"
            ).fetchone()
        return count

    # Tasks of earlier tests (the computers pre-staged above) are published and applied before counting starts:
    # one the worker still applies when the broker stops loses its ack and comes again ("repeated").
    wait_until(lambda: unfinished() == 0, 120, "earlier tests' tasks applied and reported")
    published_before = published()
    repeated_before = scrape(domain_worker.metrics_url).value("es4ps_worker_tasks_total", outcome="repeated")
    domain_broker.stop()
    try:
        for name, person in people.items():
            assert person.register(name, f"{name}@{ALLOWED_DOMAIN}").url.endswith("/status/")
        for name, person in people.items():
            person.confirm_link(mail_catcher.wait_for(f"{name}@{ALLOWED_DOMAIN}").link("/verify/"))
        wait_until(
            lambda: all(scrape(url).value("es4ps_portal_outbox_tasks") >= 2 * len(people) for url in consumers),
            30,
            "both consumers counting the waiting tasks",
        )
        time.sleep(5)  # both relays meet a closed broker and back off
    finally:
        domain_broker.start()
    for person in people.values():
        person.wait_for_status(lambda s: s["state"] == "ready", timeout_s=180)

    # Each task was published once, by one relay or the other; none reached the worker twice.
    assert published() - published_before == 2 * len(people)
    assert scrape(domain_worker.metrics_url).value("es4ps_worker_tasks_total", outcome="repeated") == repeated_before
    with postgres.connect("portal_replicas") as database:
        rows = database.execute(
            "SELECT u.username, t.operation, t.published_at FROM accounts_provisioningtask t"
            " JOIN accounts_user u ON t.user_id = u.id WHERE u.username = ANY(%s) ORDER BY t.id",
            [list(people)],
        ).fetchall()
    assert [at for _name, _operation, at in rows] == sorted(at for _name, _operation, at in rows)
    for name in people:
        assert [operation for who, operation, _at in rows if who == name] == ["create_user", "enable_user"]
