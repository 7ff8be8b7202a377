"""Mail leaves only through a configured server: without one nothing is sent and no link reaches a log."""

from __future__ import annotations

import pytest
from es4ps_operator.builders.portal import portal_environment
from es4ps_operator.config import Images, OperatorConfig
from es4ps_testkit import ServiceError
from es4ps_testkit.domains import make_domain
from es4ps_testkit.live_portal import LivePortal
from es4ps_testkit.registration import ALLOWED_DOMAIN, unique_client_ip, unique_username

# What a mail would leave in a log if a backend printed it: the link's query and the MIME headers.
MAIL_TRACES = ("token=", "/verify/?", "/password/reset/confirm/?", "Subject:", "Content-Type: text/")


def operator_mail_env(**portal_spec) -> dict[str, str]:
    """The mail variables the operator gives the portal of a domain with this spec.portal."""
    config = OperatorConfig(images=Images(samba="s", portal="p", broker="b"), cluster_dns_ip="10.96.0.10")
    domain = make_domain(portal={"host": "accounts.acme.example", **portal_spec})
    return {
        variable["name"]: variable["value"]
        for variable in portal_environment(domain, config)
        if variable["name"].startswith(("ES4PS_EMAIL", "ES4PS_SMTP", "ES4PS_MAIL"))
    }


@pytest.fixture
def portal_without_mail_server(tmp_path, rabbitmq, contract_keys):
    """serve and consume as the operator configures them for a domain without spec.portal.smtp."""
    env = {**rabbitmq.portal_env, **contract_keys.portal_env, "ES4PS_REALM": "ES4PS.TEST", **operator_mail_env()}
    portal = LivePortal(tmp_path, env)
    try:
        portal.start()
    except ServiceError as exc:
        portal.stop()
        pytest.fail(str(exc), pytrace=False)
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
    logs = portal.logs()
    assert [trace for trace in MAIL_TRACES if trace in logs] == []
    assert "no mail server is configured (spec.portal.smtp)" in logs


def test_the_console_backend_is_refused_outside_development(tmp_path):
    """Mails in the log are a development setting: a portal without DJANGO_DEBUG=1 does not start with it."""
    portal = LivePortal(tmp_path, {"ES4PS_REALM": "ES4PS.TEST", "ES4PS_EMAIL_BACKEND": "console"})
    with pytest.raises(ServiceError, match="es4ps-portal serve: the process exited with 2"):
        portal.start_serve(timeout_s=60)
    portal.stop()
    assert "ES4PS_EMAIL_BACKEND=console writes mails and their links to the log" in portal.logs()
