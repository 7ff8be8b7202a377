"""Registration, e-mail verification, tokens and rate limits, in process against the real broker and SMTP server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from es4ps_contract.tasks import Operation
from es4ps_portal.accounts.models import EmailToken, User
from es4ps_portal.provisioning.models import ProvisioningTask
from es4ps_portal.provisioning.outbox import relay_round
from es4ps_testkit.admin_sign_in import sign_in_staff
from es4ps_testkit.in_process import consumer_round
from es4ps_testkit.live_portal import read_task_queue
from es4ps_testkit.mail import CaughtMail, MailCatcher
from es4ps_testkit.registration import ALLOWED_DOMAIN, GOOD_PASSWORD, form
from prometheus_client import REGISTRY

pytestmark = pytest.mark.django_db


def register(client: Client, username: str, **changes):
    """Send the form, then let the consumer's rounds run (they make the registration, or mail why not)."""
    response = client.post("/register/", form(username, **changes))
    consumer_round()
    return response


def operations(user: User) -> list[str]:
    return list(user.provisioning_tasks.order_by("created_at").values_list("operation", flat=True))


def verification_mail(smtp: MailCatcher, username: str, count: int = 1) -> CaughtMail:
    return smtp.wait_for(f"{username}@{ALLOWED_DOMAIN}", count=count)


def token_of(mail: CaughtMail) -> str:
    return mail.link("/verify/").split("token=", 1)[1]


def code_of(mail: CaughtMail) -> str:
    return mail.text.split("type this code on the status page: ", 1)[1][:6]


@pytest.fixture
def registered(client: Client, broker, smtp: MailCatcher, username: str) -> tuple[User, CaughtMail]:
    """A person who registered in this client's session, and the verification mail they received."""
    response = register(client, username)
    assert response.status_code == 302, response.content.decode()[:2000]
    return User.objects.get(username=username), verification_mail(smtp, username)


def test_registration_publishes_create_user_keeps_no_password_and_mails_a_link(registered, client, username):
    user, mail = registered
    assert not user.has_usable_password()
    assert user.directory_state == User.DirectoryState.PENDING
    assert operations(user) == [Operation.CREATE_USER]
    assert mail.subject == "Acme Corp: confirm your e-mail address"
    assert mail.link("/verify/").startswith("https://testserver/verify/?token=")
    assert "ES4PS.TEST" in mail.text
    # Nothing the registrant typed is in the mail: the address is not proven yet (names can carry a link).
    assert username not in mail.text and "Ada" not in mail.text and "Lovelace" not in mail.html
    assert GOOD_PASSWORD not in mail.text and GOOD_PASSWORD not in mail.html
    # Only digests of the token and code are stored.
    stored = EmailToken.objects.get(user=user)
    assert token_of(mail) not in (stored.token_digest, stored.code_digest)
    # Until the address is confirmed the page shows only that: the same as for a name that was taken.
    status = client.get("/status.json").json()
    assert (status["state"], status["tasks"], status["username"]) == ("waiting_for_verification", [], "")


def test_the_link_verifies_once_and_publishes_enable_user(registered):
    user, mail = registered
    browser = Client()  # the link may be opened in another browser
    link = mail.link("/verify/").removeprefix("https://testserver")
    page = browser.get(link)
    assert page.status_code == 200 and b"Confirm my address" in page.content
    # Looking at the page (as a mail scanner does) uses nothing up.
    assert operations(user) == [Operation.CREATE_USER]
    response = browser.post("/verify/", {"token": token_of(mail)})
    assert response.status_code == 302 and response["Location"] == "/status/"
    user.refresh_from_db()
    assert user.is_email_verified
    assert operations(user) == [Operation.CREATE_USER, Operation.ENABLE_USER]
    # The browser that verified now follows the account's status.
    assert browser.get("/status.json").json()["email_verified"] is True

    replay = Client().post("/verify/", {"token": token_of(mail)})
    assert replay.status_code == 400
    assert "already used" in replay.content.decode()
    assert operations(user) == [Operation.CREATE_USER, Operation.ENABLE_USER]


def test_an_expired_link_is_refused_and_publishes_nothing(registered):
    user, mail = registered
    EmailToken.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = Client().post("/verify/", {"token": token_of(mail)})
    assert response.status_code == 400 and "expired" in response.content.decode()
    user.refresh_from_db()
    assert not user.is_email_verified
    assert operations(user) == [Operation.CREATE_USER]


def test_an_unknown_token_is_refused(client, db):
    response = client.get("/verify/", {"token": "not-a-token"})
    assert response.status_code == 400 and "not valid" in response.content.decode()


def test_the_code_verifies_and_wrong_codes_are_counted(registered, client, settings):
    user, mail = registered
    code = code_of(mail)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    client.post("/verify/code/", {"code": wrong})
    assert not User.objects.get(pk=user.pk).is_email_verified
    assert EmailToken.objects.get(user=user).code_attempts == 1
    response = client.post("/verify/code/", {"code": code}, follow=True)
    assert "your e-mail address is confirmed" in response.content.decode()
    assert User.objects.get(pk=user.pk).is_email_verified
    assert operations(user) == [Operation.CREATE_USER, Operation.ENABLE_USER]


def test_a_code_stops_working_after_too_many_wrong_tries(registered, client, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "verify": {"ip": (100, 900), "account": (100, 900)}}
    user, mail = registered
    code = code_of(mail)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(settings.CODE_MAX_ATTEMPTS):
        client.post("/verify/code/", {"code": wrong})
    response = client.post("/verify/code/", {"code": code}, follow=True)
    assert "That code does not confirm your address" in response.content.decode()
    assert not User.objects.get(pk=user.pk).is_email_verified
    assert operations(user) == [Operation.CREATE_USER]


def test_resend_waits_for_the_cooldown_and_replaces_the_old_link(registered, client, smtp, username, settings):
    user, first_mail = registered
    response = client.post("/verify/resend/", follow=True)
    assert "You can ask again in" in response.content.decode()
    settings.RESEND_COOLDOWN_S = 0  # the wait is over
    response = client.post("/verify/resend/", follow=True)
    assert "We sent a new mail" in response.content.decode()
    second_mail = verification_mail(smtp, username, count=2)
    assert token_of(second_mail) != token_of(first_mail)
    assert Client().post("/verify/", {"token": token_of(first_mail)}).status_code == 400
    assert Client().post("/verify/", {"token": token_of(second_mail)}).status_code == 302


def test_a_refused_registration_publishes_nothing_and_sends_no_mail(client, broker, smtp, username):
    for bad in ({"email": f"{username}@evil.example"}, {"new_password1": "weak", "new_password2": "weak"}):
        assert register(client, username, **bad).status_code == 200
    assert not User.objects.filter(username=username).exists()
    assert not ProvisioningTask.objects.exists()
    assert smtp.mails_to(f"{username}@{ALLOWED_DOMAIN}") == []
    assert smtp.mails_to(f"{username}@evil.example") == []


def test_registrations_are_limited_per_address_and_per_client(client, broker, smtp, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "register": {"ip": (3, 3600), "account": (2, 3600)}}
    one_address = {"email": f"same@{ALLOWED_DOMAIN}", "new_password1": "x", "new_password2": "x"}
    assert register(client, "a1", **one_address).status_code == 200
    assert register(client, "a2", **one_address).status_code == 200
    limited = register(client, "a3", **one_address)
    assert limited.status_code == 429
    assert "Too many attempts" in limited.content.decode()
    # Another address from a fresh client still gets through the form (and fails only on its own errors).
    other = Client(HTTP_X_FORWARDED_FOR="198.51.100.2")
    assert register(other, "b1", new_password1="x", new_password2="x").status_code == 200
    for attempt in range(2):
        register(other, f"b{attempt + 2}", new_password1="x", new_password2="x")
    assert register(other, "b9", new_password1="x", new_password2="x").status_code == 429


def test_while_the_broker_is_away_registrations_are_accepted_and_their_tasks_wait_in_order(
    client, broker, smtp, username, directory_worker
):
    broker.stop()
    try:
        registered = register(client, username)
        user = User.objects.get(username=username)
        client.post("/verify/code/", {"code": code_of(verification_mail(smtp, username))})
        status = client.get("/status.json").json()
        failures = REGISTRY.get_sample_value("es4ps_portal_task_publish_failures_total")
        assert relay_round() == (0, True)  # the relay tries, the broker is not there: nothing is lost
        assert REGISTRY.get_sample_value("es4ps_portal_task_publish_failures_total") == failures + 1
    finally:
        broker.start()
    assert registered.status_code == 302 and registered["Location"] == "/status/"
    assert [(t["operation"], t["state"]) for t in status["tasks"]] == [
        ("create_user", "queued"),
        ("enable_user", "queued"),
    ]
    waiting = list(user.provisioning_tasks.order_by("id"))
    assert [t.published_at for t in waiting] == [None, None]
    # Once the broker is back, the relay publishes them, in the order they were written.
    directory_worker.stop()  # the test reads the queue itself (the session's worker may run)
    try:
        assert relay_round() == (2, False)
        taken = read_task_queue(broker, take=[str(t.task_id) for t in waiting])
    finally:
        directory_worker.start()
    assert [m["name"] for m in taken if m["id"] in {str(t.task_id) for t in waiting}] == [
        Operation.CREATE_USER.task_name,
        Operation.ENABLE_USER.task_name,
    ]


def test_sending_the_form_twice_leads_to_the_same_status_page(client, broker, smtp, username):
    assert register(client, username).status_code == 302
    again = register(client, username)
    assert again.status_code == 302 and again["Location"] == "/status/"
    assert operations(User.objects.get(username=username)) == [Operation.CREATE_USER]
    # Another browser trying the same name and address gets the same answer; the address's owner is told why.
    other = register(Client(), username)
    assert other.status_code == 302 and other["Location"] == "/status/"
    notice = smtp.wait_for(f"{username}@{ALLOWED_DOMAIN}", count=2)
    assert notice.subject == "Acme Corp: this address has an account already"
    assert "If it was not you, ignore this mail" in notice.text
    assert operations(User.objects.get(username=username)) == [Operation.CREATE_USER]


# --- hardening ---------------------------------------------------------------------------------------


def test_verifying_a_registration_whose_account_could_not_be_created_enables_nothing(registered):
    """The name was taken in the directory (by someone else): confirming the address must not enable that account."""
    user, mail = registered
    User.objects.filter(pk=user.pk).update(directory_state=User.DirectoryState.FAILED)
    assert Client().post("/verify/", {"token": token_of(mail)}).status_code == 302
    user.refresh_from_db()
    assert user.is_email_verified
    assert operations(user) == [Operation.CREATE_USER]


def test_a_password_reset_is_offered_only_to_enabled_accounts(client, broker, smtp, username, settings):
    assert register(client, username).status_code == 302
    user = User.objects.get(username=username)
    smtp.relay()  # the verification mail leaves before the address is confirmed
    User.objects.filter(pk=user.pk).update(email_verified_at=timezone.now(), directory_state=User.DirectoryState.FAILED)
    Client().post("/password/reset/", {"email": user.email})
    assert len(smtp.mails_to(user.email)) == 1  # the verification mail only: no reset link
    assert operations(user) == [Operation.CREATE_USER]


def test_codes_are_limited_per_registration_across_new_mails(registered, client, smtp, username, settings):
    user, mail = registered
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "verify": {"ip": (1000, 900), "account": (1000, 900)}}
    settings.RESEND_COOLDOWN_S = 0
    guesses = 0
    for round_ in range(settings.VERIFICATION_MAILS_MAX):
        code = code_of(verification_mail(smtp, username, count=round_ + 1))
        for _ in range(5):
            client.post("/verify/code/", {"code": f"{(int(code) + 1) % 10**6:06d}"})
            guesses += 1
        client.post("/verify/resend/")
    user.refresh_from_db()
    assert user.verification_code_failures == settings.CODE_MAX_ATTEMPTS < guesses
    assert user.verification_mails == settings.VERIFICATION_MAILS_MAX
    # No sixth mail, and the newest code no longer works either: only the link does.
    assert len(smtp.mails_to(user.email)) == settings.VERIFICATION_MAILS_MAX
    newest = verification_mail(smtp, username, count=settings.VERIFICATION_MAILS_MAX)
    response = client.post("/verify/code/", {"code": code_of(newest)}, follow=True)
    assert "That code does not confirm your address" in response.content.decode()
    assert Client().post("/verify/", {"token": token_of(newest)}).status_code == 302


def test_a_verification_link_never_outlives_its_registration(client, broker, smtp, username, settings):
    settings.UNVERIFIED_RETENTION_HOURS = 48
    assert register(client, username).status_code == 302
    user = User.objects.get(username=username)
    User.objects.filter(pk=user.pk).update(date_joined=timezone.now() - timedelta(hours=47))
    settings.RESEND_COOLDOWN_S = 0
    client.post("/verify/resend/")
    smtp.relay()  # the mail relay issues the new token
    newest = EmailToken.objects.get(user=user, used_at=None)
    assert newest.expires_at <= timezone.now() + timedelta(hours=1, seconds=5)


def test_the_shipped_limits_refuse_a_sixth_registration_of_one_address(client, broker, smtp):
    """At the defaults (no settings changed): what a person retrying one address meets."""
    one_address = {"email": f"same@{ALLOWED_DOMAIN}", "new_password1": "x", "new_password2": "x"}
    answers = [register(client, f"s{attempt}", **one_address).status_code for attempt in range(6)]
    assert answers == [200] * 5 + [429]


def test_the_shipped_limits_refuse_a_fourth_reset_of_one_address(client, broker, smtp):
    answers = [client.post("/password/reset/", {"email": f"reset@{ALLOWED_DOMAIN}"}).status_code for _ in range(4)]
    assert answers == [200] * 3 + [429]


def test_refusals_and_outcomes_are_counted_by_what_happened(client, broker, smtp, registered, username):
    def counted(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {
        "reset": counted("es4ps_portal_password_resets_total", step="request", outcome="queued"),
        "reset_limited": counted("es4ps_portal_password_resets_total", step="request", outcome="rate_limited"),
        "refusals": counted("es4ps_portal_rate_limit_refusals_total", action="reset"),
        "login_unavailable": counted("es4ps_portal_logins_total", outcome="unavailable"),
        "wrong_code": counted("es4ps_portal_verifications_total", method="code", outcome="invalid"),
    }
    for _ in range(4):
        client.post("/password/reset/", {"email": f"counted@{ALLOWED_DOMAIN}"})
    Client().post("/login/", {"username": "nobody", "password": "Wrong-Horse-42"})
    user, mail = registered
    client.post("/verify/code/", {"code": f"{(int(code_of(mail)) + 1) % 10**6:06d}"})

    assert counted("es4ps_portal_password_resets_total", step="request", outcome="queued") - before["reset"] == 3
    assert (
        counted("es4ps_portal_password_resets_total", step="request", outcome="rate_limited") - before["reset_limited"]
        == 1
    )
    assert counted("es4ps_portal_rate_limit_refusals_total", action="reset") - before["refusals"] == 1
    # An unknown name asks the directory too (no DC in process here): the answer takes an account's time.
    assert counted("es4ps_portal_logins_total", outcome="unavailable") - before["login_unavailable"] == 1
    assert counted("es4ps_portal_verifications_total", method="code", outcome="invalid") - before["wrong_code"] == 1


def test_the_shipped_limits_refuse_a_sixth_wrong_code(registered, client):
    user, mail = registered
    wrong = f"{(int(code_of(mail)) + 1) % 10**6:06d}"
    for _ in range(5):
        client.post("/verify/code/", {"code": wrong})
    response = client.post("/verify/code/", {"code": code_of(mail)}, follow=True)
    assert "Too many attempts" in response.content.decode()
    assert not User.objects.get(pk=user.pk).is_email_verified


def test_a_class_behind_one_address_is_not_refused_by_the_shipped_limits(client, broker, smtp):
    """300 people registering from one NAT address within the hour, each with an address of their own."""
    refused = 0
    for person in range(300):
        data = {"email": f"pupil{person}@{ALLOWED_DOMAIN}", "new_password1": "x", "new_password2": "x"}
        refused += register(client, f"pupil{person}", **data).status_code == 429
    assert refused == 0


def test_the_staff_users_name_is_reserved_at_registration(client, broker, smtp, settings):
    settings.SUPERUSER_USERNAME = "it-admin"
    assert register(client, "it-admin").status_code == 302
    assert not User.objects.filter(username="it-admin").exists()
    assert smtp.wait_for(f"it-admin@{ALLOWED_DOMAIN}").subject == "Acme Corp: choose another username"
    User.objects.create_user("helpdesk", "helpdesk@example.org", "Staff-Passw0rd!", is_staff=True)
    assert register(Client(), "HelpDesk").status_code == 302
    assert smtp.wait_for(f"HelpDesk@{ALLOWED_DOMAIN}").subject == "Acme Corp: choose another username"
    assert User.objects.filter(username__iexact="helpdesk").count() == 1


def test_a_password_change_ends_the_persons_other_sessions(broker, username):
    from es4ps_portal.audit.records import Actor
    from es4ps_portal.provisioning import publishing

    user = User.objects.create(
        username=username,
        email=f"{username}@{ALLOWED_DOMAIN}",
        email_verified_at=timezone.now(),
        directory_state=User.DirectoryState.ENABLED,
    )
    elsewhere = Client()
    elsewhere.force_login(user, backend="es4ps_portal.accounts.backends.DirectoryBackend")
    assert elsewhere.get("/account/").status_code == 200

    publishing.change_password(User.objects.get(pk=user.pk), GOOD_PASSWORD, actor=Actor(username, "person"))

    signed_out = elsewhere.get("/account/")
    assert signed_out.status_code == 302 and "/login/" in signed_out["Location"]
    assert operations(user) == [Operation.SET_PASSWORD]


def test_the_probes_answer_the_kubelet_and_not_the_internet(client, db):
    assert Client(HTTP_HOST="10.244.0.7:8000").get("/healthz").status_code == 200
    assert Client(HTTP_HOST="[fd00::7]:8000").get("/healthz").status_code == 200
    public = Client(HTTP_HOST="testserver")  # the public host name here, as the Ingress sends it
    assert public.get("/healthz").status_code == 404
    assert public.get("/readyz").status_code == 404


def test_the_admin_offers_no_delete_for_people_with_a_directory_account(client, db, username):
    person = User.objects.create(username=username, email=f"{username}@{ALLOWED_DOMAIN}", directory_state="enabled")
    staff = User.objects.create_superuser("root-staff", "staff@example.org", "Staff-Passw0rd!")
    sign_in_staff(client, staff)
    assert client.get(f"/admin/accounts/user/{person.pk}/delete/").status_code == 403
    listing = client.get("/admin/accounts/user/").content.decode()
    assert "delete_selected" not in listing
    assert User.objects.filter(pk=person.pk).exists()
