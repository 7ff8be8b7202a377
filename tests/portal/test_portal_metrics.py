"""The portal's metrics, scraped as Prometheus would from the real processes: gunicorn's workers summed by its
master on one port, the consumer (outbox relay, results) on another, neither reachable through the public host."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from es4ps_testkit.metrics import scrape
from es4ps_testkit.registration import ALLOWED_DOMAIN, unique_client_ip


def test_a_registration_moves_the_numbers_of_the_portal_the_consumer_and_the_worker(
    live_portal, mail_catcher, directory_worker, username
):
    web, consumer, worker = live_portal.metrics_url, live_portal.consumer_metrics_url, directory_worker.metrics_url
    before = {url: scrape(url) for url in (web, consumer, worker)}
    email = f"{username}@{ALLOWED_DOMAIN}"
    person = live_portal.client(unique_client_ip())
    assert person.register(username, email).url.endswith("/status/")
    person.confirm_link(mail_catcher.wait_for(email).link("/verify/"))
    person.wait_for_status(lambda s: s["state"] == "ready")
    refused = live_portal.client(unique_client_ip()).register(f"{username}x", f"{username}x@evil.example")
    assert refused.url.endswith("/register/")
    after = {url: scrape(url) for url in (web, consumer, worker)}

    def moved(url: str, name: str, **labels: str) -> float:
        return after[url].value(name, **labels) - before[url].value(name, **labels)

    assert moved(web, "es4ps_portal_registrations_total", outcome="accepted") == 1
    assert moved(web, "es4ps_portal_registrations_total", outcome="invalid") == 1
    assert moved(web, "es4ps_portal_verifications_total", method="link", outcome="verified") == 1
    # The consumer makes the registration (and its task) from the form the request left.
    assert moved(consumer, "es4ps_portal_tasks_queued_total", operation="create_user") == 1
    assert moved(web, "es4ps_portal_tasks_queued_total", operation="enable_user") == 1
    # Latency by the view's name (never the path, which may carry a token), both sends of the form.
    register_posts = {"view": "web:register", "method": "POST"}
    assert moved(web, "es4ps_portal_request_duration_seconds_count", **register_posts) == 2
    assert moved(web, "es4ps_portal_requests_total", **register_posts, status="302") == 1
    assert not [name for name in after[web].names() if "token" in name]

    assert moved(consumer, "es4ps_portal_tasks_published_total", operation="create_user") == 1
    assert moved(consumer, "es4ps_portal_tasks_published_total", operation="enable_user") == 1
    assert moved(consumer, "es4ps_portal_task_results_total", operation="enable_user", outcome="succeeded") == 1
    assert moved(consumer, "es4ps_portal_provisioning_duration_seconds_count", operation="create_user") == 1
    assert after[consumer].value("es4ps_portal_outbox_tasks") == 0

    assert moved(worker, "es4ps_worker_tasks_total", operation="create_user", outcome="succeeded") == 1
    assert moved(worker, "es4ps_worker_publish_to_apply_seconds_count", operation="enable_user") == 1


def test_the_web_metrics_are_the_sum_of_every_gunicorn_worker(live_portal):
    before = scrape(live_portal.metrics_url)
    # Enough requests at once that both workers answer some.
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: requests.get(f"{live_portal.url}/login/", timeout=30).status_code, range(40)))
    after = scrape(live_portal.metrics_url)
    assert answers == [200] * 40
    logins = {"view": "web:login", "method": "GET", "status": "200"}
    assert (
        after.value("es4ps_portal_requests_total", **logins) - before.value("es4ps_portal_requests_total", **logins)
        == 40
    )


def test_metrics_are_not_served_through_the_public_host(live_portal):
    public = live_portal.client(unique_client_ip())
    assert public.get("/metrics").status_code == 404
    # The probes are not counted as the portal's traffic.
    before = scrape(live_portal.metrics_url)
    assert requests.get(f"{live_portal.url}/healthz", headers={"Host": "10.1.2.3:8000"}, timeout=5).status_code == 200
    assert scrape(live_portal.metrics_url).value("es4ps_portal_requests_total") == before.value(
        "es4ps_portal_requests_total"
    )
