"""Mail leaves only through a configured server: without one nothing is sent and no link reaches a log. A mail
from the organisation carries nothing a registrant typed as free text (a "name" can be a phishing sentence)."""

from __future__ import annotations

import pytest
from es4ps_localcluster.processes import wait_until
from es4ps_operator.builders.portal import portal_environment
from es4ps_operator.config import Images, OperatorConfig
from es4ps_testkit import ServiceError
from es4ps_testkit.domains import make_domain
from es4ps_testkit.live_portal import LivePortal
from es4ps_testkit.plugins.services import started
from es4ps_testkit.registration import ALLOWED_DOMAIN, unique_client_ip, unique_username

# What a mail would leave in a log if a backend printed it: the link's query and the MIME headers.
MAIL_TRACES = ("token=", "/verify/?", "/password/reset/confirm/?", "Subject:", "Content-Type: text/")


def operator_mail_env(**portal_spec) -> dict[str, str]:
    """The mail variables the operator gives the portal of a domain with this spec.portal."""
    config = OperatorConfig(images=Images(samba="s", portal="p", broker="b"), cluster_dns_ip="10.96.0.10")
    domain = make_domain(portal={"host": "accounts.acme.example", **portal_spec})
    return {
        variable["name"]: variable["value"]
        for variable in portal_environment(domain, config, [0])
        if variable["name"].startswith(("ES4PS_EMAIL", "ES4PS_SMTP", "ES4PS_MAIL"))
    }


@pytest.fixture
def portal_without_mail_server(tmp_path, rabbitmq, contract_keys):
    """serve and consume as the operator configures them for a domain without spec.portal.smtp."""
    env = {**rabbitmq.portal_env, **contract_keys.portal_env, "ES4PS_REALM": "ES4PS.TEST", **operator_mail_env()}
    portal = started(LivePortal(tmp_path, env))
    yield portal
    portal.stop()


def test_without_a_mail_server_nothing_is_sent_and_no_link_is_logged(portal_without_mail_server):
    portal = portal_without_mail_server
    username = unique_username("nomail")
    client = portal.client(unique_client_ip())
    registered = client.register(username, f"{username}@{ALLOWED_DOMAIN}")
    assert registered.status_code == 200 and registered.url.endswith("/status/")
    client.post("/verify/resend/", {}, form_page="/status/")
    client.post("/password/reset/", {"email": f"{username}@{ALLOWED_DOMAIN}"}, form_page="/password/reset/")
    # The consumer's relay, which sends the queued mails, finds no server to send them to.
    wait_until(lambda: "no mail server is configured (spec.portal.smtp)" in portal.logs(), 60, "the relay's warning")
    logs = portal.logs()
    assert [trace for trace in MAIL_TRACES if trace in logs] == []


def test_the_console_backend_is_refused_outside_development(tmp_path):
    """Mails in the log are a development setting: a portal without DJANGO_DEBUG=1 does not start with it."""
    portal = LivePortal(tmp_path, {"ES4PS_REALM": "ES4PS.TEST", "ES4PS_EMAIL_BACKEND": "console"})
    with pytest.raises(ServiceError, match="es4ps-portal serve: the process exited with 2"):
        portal.start_serve(timeout_s=60)
    portal.stop()
    assert "ES4PS_EMAIL_BACKEND=console writes mails and their links to the log" in portal.logs()


# What an attacker types as a name, with a victim's address: a sentence and a link, sent from the organisation.
LURE_FIRST, LURE_LAST = "Your mailbox is full: restore it at", "https://evil.example/restore now"


def test_a_name_that_is_a_sentence_with_a_link_reaches_no_mail(live_portal, mail_catcher):
    """The verification mail to the victim's address (the old one greeted with the first name), and the notices a
    taken name or address gets, carry neither the names nor their link."""
    taken = unique_username("lure")
    live_portal.client(unique_client_ip()).register(taken, f"{taken}@{ALLOWED_DOMAIN}")
    cases = {
        "free": (unique_username("lure"), f"{unique_username('victim')}@{ALLOWED_DOMAIN}"),
        "name taken": (taken, f"{unique_username('victim')}@{ALLOWED_DOMAIN}"),
        "address taken": (unique_username("lure"), f"{taken}@{ALLOWED_DOMAIN}"),
    }
    for username, email in cases.values():
        answer = live_portal.client(unique_client_ip()).register(
            username, email, first_name=LURE_FIRST, last_name=LURE_LAST
        )
        assert answer.status_code == 200 and answer.url.endswith("/status/")
    mails = {case: mail_catcher.wait_for(email, count=2 if case == "address taken" else 1, timeout_s=30)
             for case, (_, email) in cases.items()}  # fmt: skip
    assert "type this code" in mails["free"].text
    for case, mail in mails.items():
        for part in (mail.subject, mail.text, mail.html):
            assert "evil.example" not in part and "mailbox" not in part, f"{case}: {part}"
