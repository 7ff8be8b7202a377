"""Registration, sign-in and reset answer alike whether or not a name or an address exists, as an attacker sees it.

The answers are compared as pages and statuses (in process, the real views,
broker and SMTP server), and as timing on the live portal with the real DC:
medians of many interleaved requests within a stated tolerance
(es4ps_testkit.enumeration; bench/enumeration.py prints the same measurement
as JSON, docs/portal.md keeps the figures). What does differ goes by mail, to
the address typed.
"""

from __future__ import annotations

import json
import re

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from es4ps_portal.accounts.models import User
from es4ps_testkit import enumeration
from es4ps_testkit.in_process import consumer_round
from es4ps_testkit.live_portal import STAFF_USERNAME
from es4ps_testkit.registration import ALLOWED_DOMAIN, form, unique_username

# Two sides count as indistinguishable when their medians differ by less than the noise of that difference
# (three standard errors, from the quartiles: es4ps_testkit.enumeration.compare) or this many ms. For sign-in the
# DC's own difference (it records an account's wrong password, and has no such work for nobody) is measured
# straight against the DC and taken off: the portal must add nothing to it.
TOLERANCE_MS = 2.0
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')
# The wait before another mail is counted from this browser's own registration, a clock the test's pace moves.
OWN_WAIT = re.compile(r"ask again in \d+ seconds?")


def same_page(client: Client, path: str, *, email: str) -> str:
    """The page as this browser gets it, with what differs per request or per person taken out."""
    return CSRF.sub("", client.get(path).content.decode()).replace(email, "ADDRESS")


def work(path: str, data: dict) -> tuple[int, list[str]]:
    """What one POST from a fresh browser and client address did in the database, as statements without their
    values, and its status: equal lists mean the same work, so the same time up to noise (bench/enumeration.py
    measures it)."""
    client = Client(HTTP_X_FORWARDED_FOR=enumeration.unique_client_ip())
    with CaptureQueriesContext(connection) as queries:
        status = client.post(path, data).status_code
    literals = re.compile(r"'(?:[^']|'')*'|\"s\d+_x\d+\"|\b\d+(?:\.\d+)?\b")
    return status, [literals.sub("?", query["sql"]) for query in queries.captured_queries]


def within_noise(measured: dict, baseline: dict | None = None) -> bool:
    difference, noise = measured["median_difference_ms"], measured["noise_ms"]
    if baseline is not None:
        difference -= baseline["median_difference_ms"]
        noise = (noise**2 + baseline["noise_ms"] ** 2) ** 0.5
    return abs(difference) <= max(TOLERANCE_MS, noise)


@pytest.mark.django_db
def test_registering_a_free_or_a_taken_name_or_address_gets_the_same_answers(broker, smtp):
    existing = unique_username("has")
    assert Client().post("/register/", form(existing)).status_code == 302
    consumer_round()
    cases = {
        "free": (unique_username("new"), None),
        "name taken": (existing, f"{unique_username('other')}@{ALLOWED_DOMAIN}"),
        "address taken": (unique_username("new"), f"{existing}@{ALLOWED_DOMAIN}"),
    }
    seen = {}
    for case, (username, email) in cases.items():
        browser, email = Client(), email or f"{username}@{ALLOWED_DOMAIN}"
        answer = browser.post("/register/", form(username, email))
        consumer_round()  # the consumer makes the registration, or mails why not
        wrong_code = browser.post("/verify/code/", {"code": "000000"}, follow=True)
        seen[case] = (
            (answer.status_code, answer["Location"]),
            same_page(browser, "/status/", email=email),
            json.dumps(browser.get("/status.json").json()).replace(email, "ADDRESS"),
            CSRF.sub("", wrong_code.content.decode()).replace(email, "ADDRESS"),
            OWN_WAIT.sub("", CSRF.sub("", browser.post("/verify/resend/", follow=True).content.decode())).replace(
                email, "ADDRESS"
            ),
        )
    assert seen["free"] == seen["name taken"] == seen["address taken"]
    # What differs reaches the address, and only it: the link and code, or why no account was made.
    assert "type this code" in smtp.wait_for(f"{cases['free'][0]}@{ALLOWED_DOMAIN}").text
    name_taken = smtp.wait_for(cases["name taken"][1])
    assert name_taken.subject == "Acme Corp: choose another username" and "If it was not you" in name_taken.text
    assert smtp.wait_for(f"{existing}@{ALLOWED_DOMAIN}", count=2).subject.endswith("has an account already")
    assert not User.objects.filter(username=cases["address taken"][0]).exists()


@pytest.mark.django_db
def test_a_reset_for_an_address_with_or_without_an_account_gets_the_same_page(broker, smtp):
    person = User.objects.create(
        username=unique_username("rs"), email=f"{unique_username('rs')}@{ALLOWED_DOMAIN}", is_active=True
    )
    User.objects.filter(pk=person.pk).update(email_verified_at="2026-01-01T00:00:00Z", directory_state="enabled")
    nobody = f"{unique_username('nobody')}@{ALLOWED_DOMAIN}"
    pages = []
    for email in (person.email, nobody):
        answer = Client().post("/password/reset/", {"email": email})
        pages.append((answer.status_code, CSRF.sub("", answer.content.decode()).replace(email, "ADDRESS")))
    assert pages[0] == pages[1]
    assert "/password/reset/confirm/?token=" in smtp.wait_for(person.email).text
    assert smtp.mails_to(nobody) == []


@pytest.mark.django_db
def test_a_request_does_the_same_work_and_sends_no_mail_whether_or_not_the_name_or_address_exists(
    broker, smtp, mail_catcher
):
    """The request's own work, statement by statement, for an account and for nobody; no mail leaves inside the
    request (the old reset page issued a token and talked to the mail server for an account only)."""
    existing = unique_username("wk")
    assert Client().post("/register/", form(existing)).status_code == 302
    consumer_round()
    person = User.objects.get(username=existing)
    User.objects.filter(pk=person.pk).update(email_verified_at="2026-01-01T00:00:00Z", directory_state="enabled")
    nobody = unique_username("wn")
    # The rate limits' counters of the setup's own registration are not the existence of the address.
    cache.clear()
    mails_before = len(mail_catcher.mails_to(person.email))
    reset_known = work("/password/reset/", {"email": person.email})
    reset_unknown = work("/password/reset/", {"email": f"{nobody}@{ALLOWED_DOMAIN}"})
    assert reset_known == reset_unknown
    free = unique_username("wf")
    register_free = work("/register/", form(free))
    register_taken_name = work("/register/", form(existing, f"{unique_username('wo')}@{ALLOWED_DOMAIN}"))
    register_taken_address = work("/register/", form(unique_username("wa"), person.email))
    assert register_free == register_taken_name == register_taken_address
    assert register_free[0] == 302
    # Nothing was mailed while the requests ran: the consumer's relay sends it afterwards.
    assert len(mail_catcher.mails_to(person.email)) == mails_before
    consumer_round()
    assert len(mail_catcher.wait_for(person.email, count=mails_before + 2).text) > 0


def test_the_live_portal_answers_in_the_same_time_whether_or_not_a_name_or_address_exists(
    live_portal, mail_catcher, samba_dc, settings, record_property
):
    """Medians of interleaved requests from fresh addresses: registration (free name vs taken), sign-in with a
    wrong password (an account vs nobody), reset (an account's address vs nobody's)."""
    from es4ps_portal.accounts import directory

    people = [unique_username("tm") for _ in range(6)]
    for username in people:
        live_portal.ready_person(mail_catcher, username)
    settings.LDAP_URL, settings.LDAP_CA_FILE = (
        samba_dc.portal_env["ES4PS_LDAP_URL"],
        samba_dc.portal_env["ES4PS_LDAP_CA_FILE"],
    )
    settings.REALM = samba_dc.realm
    # Four wrong passwords per account through the portal, and four straight to the DC: under its rate limit (5)
    # and the domain's lockout (10).
    measured = {
        "register": enumeration.registration(live_portal.url, people[0], pairs=30),
        "sign_in": enumeration.sign_in(live_portal.url, people, attempts_each=4),
        "sign_in_dc_itself": enumeration.directory_baseline(directory.bind, people, 4, directory.NO_ACCOUNT),
        # Three resets per address: its rate limit.
        "reset": enumeration.reset(live_portal.url, [f"{name}@{ALLOWED_DOMAIN}" for name in people], 3),
    }
    record_property("timing", json.dumps(measured))
    print(json.dumps(measured, indent=2))
    for action in ("register", "sign_in", "reset"):
        assert len(measured[action]["answers"]) == 1, f"{action}: the answers differ: {measured[action]['answers']}"
    assert within_noise(measured["register"]), measured["register"]
    assert within_noise(measured["reset"]), measured["reset"]
    assert within_noise(measured["sign_in"], measured["sign_in_dc_itself"]), measured


def test_signing_in_as_nobody_as_an_unconfirmed_registration_or_with_a_wrong_password_reads_the_same(
    live_portal, mail_catcher
):
    """The sign-in page against the real DC: no hint whether the name exists or is confirmed (the previous code
    told an unconfirmed registration to confirm its address first)."""
    confirmed, unconfirmed = unique_username("si"), unique_username("su")
    live_portal.ready_person(mail_catcher, confirmed)
    live_portal.client(enumeration.unique_client_ip()).register(unconfirmed, f"{unconfirmed}@{ALLOWED_DOMAIN}")
    pages = {}
    for case, name in {"nobody": unique_username("no"), "unconfirmed": unconfirmed, "account": confirmed,
                       "staff": STAFF_USERNAME}.items():  # fmt: skip
        answer = live_portal.client(enumeration.unique_client_ip()).login(name, enumeration.WRONG_PASSWORD)
        pages[case] = (answer.status_code, CSRF.sub("", answer.text).replace(f'value="{name}"', 'value="NAME"'))
    assert "The username or password is not right." in pages["account"][1]
    assert pages["nobody"] == pages["unconfirmed"] == pages["account"] == pages["staff"]
