"""A portal that accepts registrations while the broker is away: the transactional outbox, with the real processes.

The session's RabbitMQ is stopped for half a minute while twenty people register
and confirm their addresses through `es4ps-portal serve`; every one is accepted
at once, and once the broker is back the consumer's relay publishes the waiting
tasks in the order they were written, the real worker creates and enables every
account.
"""

from __future__ import annotations

import time
from datetime import datetime

from es4ps_localcluster.processes import wait_until
from es4ps_testkit.metrics import scrape
from es4ps_testkit.registration import ALLOWED_DOMAIN, GOOD_PASSWORD, unique_client_ip
from es4ps_testkit.samba import account_is_enabled, directory_account, password_authenticates

PEOPLE = 20
OUTAGE_S = 30


def published_order(database, usernames: list[str]) -> list[tuple[str, str, datetime]]:
    """(username, operation, published_at) of the accounts' tasks, in the order they were written."""
    query = (
        "SELECT u.username, t.operation, t.published_at FROM accounts_provisioningtask t"
        " JOIN accounts_user u ON t.user_id = u.id WHERE u.username IN ({}) ORDER BY t.id"
    )
    rows = database.execute(query.format(",".join("?" * len(usernames))), usernames).fetchall()
    return [(name, operation, datetime.fromisoformat(published)) for name, operation, published in rows]


def test_twenty_registrations_while_the_broker_is_away_are_all_accepted_and_created_in_order_after(
    live_portal, rabbitmq, mail_catcher, samba_dc, directory_worker, username
):
    people = {f"{username}o{i}": live_portal.client(unique_client_ip()) for i in range(PEOPLE)}
    failures_before = scrape(live_portal.consumer_metrics_url).value("es4ps_portal_task_publish_failures_total")
    rabbitmq.stop()
    try:
        away_since = time.monotonic()
        for name, person in people.items():
            registered = person.register(name, f"{name}@{ALLOWED_DOMAIN}")
            assert registered.status_code == 200 and registered.url.endswith("/status/"), registered.text[-2000:]
            assert "Nothing was changed" not in registered.text
        for name, person in people.items():
            confirmed = person.confirm_link(mail_catcher.wait_for(f"{name}@{ALLOWED_DOMAIN}").link("/verify/"))
            assert confirmed.url.endswith("/status/") and "Nothing was changed" not in confirmed.text
        # Everything waits in the outbox, and the status pages say so.
        wait_until(
            lambda: scrape(live_portal.consumer_metrics_url).value("es4ps_portal_outbox_tasks") >= 2 * PEOPLE,
            30,
            "the consumer counting the waiting tasks",
        )
        for person in people.values():
            tasks = person.status()["tasks"]
            assert [(t["operation"], t["state"]) for t in tasks] == [
                ("create_user", "queued"),
                ("enable_user", "queued"),
            ]
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - away_since)))
        stalled = scrape(live_portal.consumer_metrics_url)
    finally:
        rabbitmq.start()
    assert stalled.value("es4ps_portal_task_publish_failures_total") > failures_before
    assert stalled.value("es4ps_portal_outbox_oldest_task_age_seconds") >= OUTAGE_S / 2

    for person in people.values():
        person.wait_for_status(lambda s: s["state"] == "ready", timeout_s=180)
    for name in list(people)[:: PEOPLE // 4]:
        assert account_is_enabled(directory_account(samba_dc, name))
        assert password_authenticates(samba_dc, name, GOOD_PASSWORD)
    # Published in the order they were written: every create before its account's enable.
    with live_portal.database() as database:
        order = published_order(database, list(people))
    assert len(order) == 2 * PEOPLE
    published_at = [at for _name, _operation, at in order]
    assert published_at == sorted(published_at)
    for name in people:
        assert [operation for who, operation, _at in order if who == name] == ["create_user", "enable_user"]
    assert scrape(live_portal.consumer_metrics_url).value("es4ps_portal_outbox_tasks") == 0
