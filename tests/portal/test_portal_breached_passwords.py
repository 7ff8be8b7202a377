"""Breached passwords: the domain's policy refuses what a breach corpus knows, asked by k-anonymity ranges.

In process through the real forms, against a range server (and range files) the test makes from its own
corpus: never the internet.
"""

from __future__ import annotations

import pytest
from django.test import Client
from es4ps_contract.passwords import BreachedPasswords
from es4ps_portal.accounts.models import User
from es4ps_testkit.breached import RangeServer, write_range_files
from es4ps_testkit.domains import default_password_policy
from es4ps_testkit.in_process import consumer_round
from es4ps_testkit.registration import GOOD_PASSWORD, form
from prometheus_client import REGISTRY

pytestmark = pytest.mark.django_db

# The test's corpus: passwords the domain's other rules accept, known from "breaches".
BREACHED = "correct horse battery staple"  # noqa: S105 - a test password
ALSO_BREACHED = "Tr0ub4dor&3-long-enough"  # noqa: S105 - a test password
MESSAGE = "This password is in a list of passwords known from data breaches"


def lookups(outcome: str) -> float:
    return REGISTRY.get_sample_value("es4ps_portal_breached_password_lookups_total", {"outcome": outcome}) or 0.0


def with_corpus(settings, *, range_url: str = "", range_files_claim: str = "") -> None:
    corpus = BreachedPasswords(range_url=range_url, range_files_claim=range_files_claim)
    settings.PASSWORD_POLICY = default_password_policy(breached_passwords=corpus)


@pytest.fixture
def range_server():
    server = RangeServer([BREACHED, ALSO_BREACHED]).start()
    yield server
    server.stop()


def test_a_password_from_the_corpus_is_refused_with_the_policys_message(settings, range_server, username):
    with_corpus(settings, range_url=range_server.url)
    before = lookups("breached")
    page = Client().post("/register/", form(username, password=BREACHED))
    assert page.status_code == 200 and MESSAGE in page.content.decode()
    assert not User.objects.filter(username=username).exists()
    assert lookups("breached") == before + 1
    # Only the first five hex characters of the SHA-1 left the portal, padded answers asked for.
    assert [len(path.removeprefix("/range/")) for path in range_server.asked] == [5]
    assert range_server.headers[0].get("Add-Padding") == "true"
    assert BREACHED not in "".join(range_server.asked)
    # The rule is shown beside the field too.
    assert "Not a password known from data breaches." in Client().get("/register/").content.decode()


def test_a_password_the_corpus_does_not_know_registers(settings, range_server, broker, smtp, username):
    with_corpus(settings, range_url=range_server.url)
    before = lookups("clean")
    assert Client().post("/register/", form(username, password=GOOD_PASSWORD)).status_code == 302
    consumer_round()
    assert User.objects.filter(username=username).exists()
    assert lookups("clean") == before + 1


def test_with_the_range_server_down_registrations_go_on_and_the_failure_is_counted(
    settings, range_server, broker, smtp, username
):
    with_corpus(settings, range_url=range_server.url)
    range_server.stop()
    before = lookups("unavailable")
    assert Client().post("/register/", form(username, password=BREACHED)).status_code == 302
    consumer_round()
    assert User.objects.filter(username=username).exists()
    assert lookups("unavailable") == before + 1


def test_range_files_on_a_volume_refuse_too_and_a_missing_file_is_a_failure(settings, tmp_path, broker, smtp, username):
    write_range_files(tmp_path, [BREACHED])
    settings.BREACHED_RANGE_FILES_DIR = str(tmp_path)
    with_corpus(settings, range_files_claim="breach-ranges")
    refused = Client().post("/register/", form(username, password=BREACHED))
    assert refused.status_code == 200 and MESSAGE in refused.content.decode()
    # ALSO_BREACHED's range has no file here: not found, counted, accepted.
    before = lookups("unavailable")
    assert Client().post("/register/", form(username, password=ALSO_BREACHED)).status_code == 302
    assert lookups("unavailable") == before + 1


def test_a_new_password_chosen_through_a_reset_is_looked_up_as_well(settings, range_server):
    from es4ps_portal.web.forms import ResetPasswordForm

    with_corpus(settings, range_url=range_server.url)
    person = User(username="ada", first_name="Ada", last_name="Lovelace")
    chosen = ResetPasswordForm(person, {"new_password1": ALSO_BREACHED, "new_password2": ALSO_BREACHED})
    assert not chosen.is_valid() and MESSAGE in chosen.errors["new_password1"][0]
