"""Caps on unconfirmed registrations (spec.portal.pendingRegistrations), in process against the real broker and SMTP
server: per domain, per client address, per e-mail domain, each refusing with a clear message and counted."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client
from es4ps_portal.accounts.imports import import_people
from es4ps_portal.accounts.legacy_portal import CollegeUser
from es4ps_portal.accounts.models import RegistrationRequest, User
from es4ps_portal.provisioning.outbox import measure_outbox
from es4ps_testkit.in_process import consumer_round
from es4ps_testkit.registration import ALLOWED_DOMAIN, form, unique_client_ip, unique_username
from prometheus_client import REGISTRY

pytestmark = pytest.mark.django_db

ROOMY = 1000
NOW = datetime.datetime.now(datetime.UTC)


def register(username: str, client_ip: str, email: str | None = None):
    return Client(HTTP_X_FORWARDED_FOR=client_ip).post("/register/", form(username, email))


def refused_count() -> float:
    return REGISTRY.get_sample_value("es4ps_portal_registrations_total", {"outcome": "too_many_pending"}) or 0.0


@pytest.fixture
def caps(settings, broker, smtp):
    """Set the caps a test needs (the others roomy)."""

    def set_caps(**given: int) -> None:
        settings.PENDING_REGISTRATION_LIMITS = {
            "perDomain": ROOMY,
            "perAddress": ROOMY,
            "perEmailDomain": ROOMY,
            **given,
        }

    return set_caps


def test_the_cap_per_client_address_refuses_with_a_clear_message_and_is_counted(caps, username):
    caps(perAddress=2)
    campus = unique_client_ip()
    assert [register(f"{username}{i}", campus).status_code for i in range(2)] == [302, 302]
    before = refused_count()

    refused = register(f"{username}2", campus)
    assert refused.status_code == 429
    assert (
        "Too many registrations from your network wait for their address to be confirmed. Confirm those first"
        " (follow the link in their mails), or try again in a few hours." in refused.content.decode()
    )
    assert not User.objects.filter(username=f"{username}2").exists()
    assert refused_count() == before + 1
    # Another address is not held back; a confirmed registration no longer counts.
    assert register(f"{username}3", unique_client_ip()).status_code == 302
    consumer_round()  # the consumer makes the registrations
    User.objects.filter(username=f"{username}0").update(
        email_verified_at=User.objects.get(username=f"{username}0").date_joined
    )
    assert register(f"{username}4", campus).status_code == 302


def test_the_cap_per_email_domain_counts_that_domain_only(caps, username):
    held = User.objects.filter(email_verified_at=None, email__iendswith=f"@{ALLOWED_DOMAIN}").count()
    caps(perEmailDomain=held + RegistrationRequest.objects.count() + 1)
    assert register(f"{username}a", unique_client_ip()).status_code == 302
    refused = register(f"{username}b", unique_client_ip())
    assert refused.status_code == 429
    assert f"Too many registrations with addresses at {ALLOWED_DOMAIN} wait" in refused.content.decode()
    other_domain = register(f"{username}c", unique_client_ip(), email=f"{username}c@bücher.example")
    assert other_domain.status_code == 302


def test_the_cap_per_domain_and_the_gauge_of_unconfirmed_registrations(caps, username):
    pending = User.objects.filter(email_verified_at=None, is_staff=False).count()
    caps(perDomain=pending + RegistrationRequest.objects.count() + 1)
    assert register(f"{username}a", unique_client_ip()).status_code == 302
    refused = register(f"{username}b", unique_client_ip())
    assert refused.status_code == 429
    assert "Too many registrations wait for their address to be confirmed." in refused.content.decode()

    consumer_round()  # the consumer makes the registration
    measure_outbox()  # what the consumer's relay does every round
    assert REGISTRY.get_sample_value("es4ps_portal_pending_registrations") == pending + 1
    assert REGISTRY.get_sample_value("es4ps_portal_pending_registration_cap", {"scope": "perDomain"}) == pending + 1


def test_a_taken_name_or_address_counts_against_the_caps_like_a_free_one(caps, username):
    """The caps must not tell either: a form with a taken name or address makes no registration, yet holds its
    place in the cap as long as one would (before, only made registrations counted: the cap's refusal came one
    form later for every taken name among an address's forms)."""
    existing = unique_username("cp")
    assert register(existing, unique_client_ip()).status_code == 302
    consumer_round()
    caps(perAddress=2)
    for taken in (
        form(existing, f"{unique_username('cq')}@{ALLOWED_DOMAIN}"),
        form(unique_username("cr"), f"{existing}@{ALLOWED_DOMAIN}"),
    ):
        campus = unique_client_ip()
        assert Client(HTTP_X_FORWARDED_FOR=campus).post("/register/", taken).status_code == 302
        consumer_round()  # the consumer finds it taken and mails the address why
        assert register(unique_username("cf"), campus).status_code == 302
        assert register(unique_username("cs"), campus).status_code == 429


def test_people_imported_from_es4ps_containers_do_not_fill_the_caps(caps, username):
    """An import of a campus's people (waiting to claim their accounts) is no flood of registrations."""
    caps(perDomain=3, perEmailDomain=3, perAddress=3)
    rows = [
        CollegeUser(i, f"{username}i{i}", f"{username}i{i}@{ALLOWED_DOMAIN}", "Ana", "Lima", True, False, True, NOW)
        for i in range(5)
    ]
    assert len(import_people(rows).imported) == 5
    assert register(f"{username}r", unique_client_ip()).status_code == 302
