"""Registration and the other forms: every rule, with the reason shown next to its field.

No broker here: an invalid form never gets as far as publishing (the broker
tests show that nothing reaches the queue).
"""

from __future__ import annotations

import pytest
from django.test import Client
from es4ps_portal.accounts.models import User
from es4ps_portal.provisioning.models import ProvisioningTask
from es4ps_portal.web.forms import CodeForm, RegistrationForm, ResetPasswordForm
from es4ps_testkit.domains import default_password_policy
from es4ps_testkit.registration import ALLOWED_DOMAIN, GOOD_PASSWORD, form

pytestmark = pytest.mark.django_db


def registration(**changes) -> dict[str, str]:
    return {**form("ada.lovelace", f"ada@{ALLOWED_DOMAIN}"), **changes}


def errors_of(**changes) -> dict[str, list[str]]:
    form = RegistrationForm(registration(**changes))
    assert not form.is_valid()
    return form.errors


def test_a_good_registration_is_valid_and_normalised():
    form = RegistrationForm(registration(username="  Ada.Lovelace ", email="Ada@MAIL.Acme.Example", first_name=" Ada "))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["username"] == "ada.lovelace"
    assert form.cleaned_data["email"] == "Ada@mail.acme.example"
    assert form.cleaned_data["first_name"] == "Ada"


@pytest.mark.parametrize(
    ("username", "reason"),
    [
        ("ada lovelace", "may contain only"),
        ("ada@acme", "may contain only"),
        ("-ada", "must start and end"),
        ("ada.", "must start and end"),
        ("adä", "may contain only"),
        ("12345", "at least one letter"),
        ("administrator", "reserved"),
        ("KRBTGT", "reserved"),
        ("a" * 21, "at most 20 characters"),
        ("", "required"),
    ],
)
def test_usernames_follow_the_directory_rules(username, reason):
    assert reason in " ".join(errors_of(username=username)["username"]).lower()


def test_the_form_does_not_say_whether_a_name_is_taken():
    """web.views.registration mails the address instead (tests/portal/test_portal_enumeration.py)."""
    User.objects.create(username="ada.lovelace", email="other@acme.example")
    assert RegistrationForm(registration(username="Ada.Lovelace")).is_valid()


@pytest.mark.parametrize(
    "email",
    [
        "ada@acmeXexample",
        "ada@acme.example.evil",
        "ada@evil-acme.example",
        "ada@аcme.example",  # Cyrillic а
        "ada@example",
        "ada@gmail.com",
        "ada@acme.example@evil.example",
    ],
)
def test_addresses_outside_the_allowed_domains_are_refused(email):
    assert errors_of(email=email)["email"]


def test_the_refusal_names_the_allowed_domains():
    message = " ".join(errors_of(email="ada@evil.example")["email"])
    assert "acme.example" in message and "bücher.example" in message


def test_an_international_allowed_domain_is_stored_as_people_read_it():
    form = RegistrationForm(registration(email="ada@XN--BCHER-KVA.example"))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["email"] == "ada@bücher.example"


def test_compatibility_forms_are_stored_as_the_name_that_was_compared():
    # Full-width letters map to ASCII under IDNA: the mail goes to acme.example, so that is what is stored.
    form = RegistrationForm(registration(email="ada@ＡＣＭＥ.example"))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["email"] == f"ada@{ALLOWED_DOMAIN}"


def test_a_full_width_dot_is_not_an_address():
    assert errors_of(email="ada@acme．example")["email"]


def test_an_invisible_character_in_the_address_is_refused():
    assert errors_of(email="ada@acme.exa\u200bmple")["email"]


def test_the_form_does_not_say_whether_an_address_is_registered():
    User.objects.create(username="someone", email=f"ada@{ALLOWED_DOMAIN}")
    assert RegistrationForm(registration(email=f"ADA@{ALLOWED_DOMAIN.upper()}")).is_valid()


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Sh0rt-but-Ok!", "use at least 14 characters."),
        ("my-ada.lovelace-words", "do not include your username."),
    ],
)
def test_passwords_follow_the_domain_policy_with_the_reason_at_the_field(password, reason):
    errors = errors_of(new_password1=password, new_password2=password)
    assert reason in " ".join(errors["new_password1"]).lower()
    assert "new_password2" not in errors


def test_a_long_password_of_plain_words_is_good_under_the_default_policy():
    words = "plain lower case words"
    form = RegistrationForm(registration(new_password1=words, new_password2=words))
    assert form.is_valid(), form.errors


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Sh0rt!", "use at least 8 characters."),
        ("alllowercase", "three of these groups"),
        ("ALLUPPER123", "three of these groups"),
        ("X-ada.lovelace-9", "username"),
        ("Lovelace-Rules-1", "part of your name"),
    ],
)
def test_a_domain_with_the_complexity_rule_gets_its_reasons(settings, password, reason):
    settings.PASSWORD_POLICY = default_password_policy(min_length=8, complexity=True)
    errors = errors_of(new_password1=password, new_password2=password)
    assert reason in " ".join(errors["new_password1"]).lower()


def test_the_help_text_follows_the_policy_in_force(settings):
    assert RegistrationForm().fields["new_password1"].help_text.startswith("At least 14 characters")
    settings.PASSWORD_POLICY = default_password_policy(min_length=10, complexity=True, max_age_days=90)
    help_text = RegistrationForm().fields["new_password1"].help_text
    assert help_text.startswith("At least 10 characters")
    assert "three of these groups" in help_text
    assert "expires after 90 days" in help_text


def test_two_different_passwords_are_refused_at_the_second_field():
    assert "differ" in " ".join(errors_of(new_password2=GOOD_PASSWORD + "x")["new_password2"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "A" * 65),
        ("last_name", "L" * 65),
        ("email", "a" * 250 + "@acme.example"),
        ("username", "u" * 1000),
        ("new_password1", "Aa1!" * 65),
    ],
)
def test_oversize_fields_are_refused(field, value):
    assert errors_of(**{field: value})[field]


def test_control_characters_in_names_are_refused():
    assert "control or invisible" in " ".join(errors_of(last_name="Love\u202elace")["last_name"])


def test_every_missing_field_is_reported():
    form = RegistrationForm({})
    assert not form.is_valid()
    assert set(form.errors) == {"username", "email", "first_name", "last_name", "new_password1", "new_password2"}


def test_a_reset_password_is_checked_against_the_accounts_own_name(settings):
    user = User(username="grace", first_name="Grace", last_name="Hopper")
    form = ResetPasswordForm(user, {"new_password1": "grace-is-my-name", "new_password2": "grace-is-my-name"})
    assert not form.is_valid()
    assert "Do not include your username." in form.errors["new_password1"]
    settings.PASSWORD_POLICY = default_password_policy(complexity=True)
    form = ResetPasswordForm(user, {"new_password1": "Hopper-2024-xyzw", "new_password2": "Hopper-2024-xyzw"})
    assert not form.is_valid()
    assert "part of your name" in " ".join(form.errors["new_password1"])


@pytest.mark.parametrize(("code", "valid"), [("123456", True), ("123 456", True), ("12345", False), ("abcdef", False)])
def test_codes_have_six_digits(code, valid):
    assert CodeForm({"code": code}).is_valid() is valid


def test_a_form_without_its_csrf_token_is_refused_with_a_clear_page_and_nothing_happens():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/register/", registration())
    assert response.status_code == 403
    assert "security token" in response.content.decode()
    assert not User.objects.exists()
    assert not ProvisioningTask.objects.exists()


def test_a_rejected_registration_shows_every_reason_and_keeps_what_was_typed(client):
    response = client.post("/register/", registration(email="ada@evil.example", new_password1="short"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Registration is open to addresses of" in page
    assert "Use at least 14 characters." in page
    assert 'value="ada.lovelace"' in page
    # A password is never sent back to the browser.
    assert "short" not in page and GOOD_PASSWORD not in page
    assert not User.objects.exists()
