"""The mails about passwords, through the real SMTP server: a notice after every change or reset the directory
took, and the reminders before a password expires (where the domain's policy sets a maximum age)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from es4ps_contract.events import REASON_SUPERSEDED, Outcome, ResultEvent
from es4ps_contract.tasks import Operation
from es4ps_portal.accounts.models import User
from es4ps_portal.accounts.password_expiry import EXPIRED, reminder_due, send_password_expiry_reminders
from es4ps_portal.provisioning.models import ProvisioningTask
from es4ps_portal.provisioning.results import record_result_event
from es4ps_testkit.domains import default_password_policy
from es4ps_testkit.mail import MailCatcher

pytestmark = pytest.mark.django_db

FINISHED_AT = datetime(2027, 3, 1, 9, 30, tzinfo=UTC)


def person(username: str, **fields) -> User:
    user = User.objects.create(
        username=username,
        email=f"{username}@acme.example",
        first_name="Ada",
        directory_state=User.DirectoryState.ENABLED,
        email_verified_at=timezone.now(),
        **fields,
    )
    user.set_unusable_password()
    return user


def result(user: User, operation: Operation, reason: str = "") -> bool:
    task = ProvisioningTask.objects.create(task_id=uuid.uuid4(), user=user, operation=operation.value)
    return record_result_event(
        ResultEvent(
            str(task.task_id), operation.value, user.username, Outcome.SUCCEEDED, reason, "dc0", FINISHED_AT.timestamp()
        )  # fmt: skip
    )


# --- a notice after every change or reset ---------------------------------------------------------------


def test_a_password_the_directory_set_is_told_to_its_owner_once(
    smtp: MailCatcher, username, django_capture_on_commit_callbacks
):
    user = person(username)
    with django_capture_on_commit_callbacks(execute=True):
        assert result(user, Operation.SET_PASSWORD)
    notice = smtp.wait_for(user.email)
    assert notice.subject == "Acme Corp: your password was changed"
    assert f'the password of the account "{username}" in ES4PS.TEST was changed on' in notice.text
    assert "somebody else knows your password" in notice.text
    assert notice.link("/password/reset/") == "https://testserver/password/reset/"
    user.refresh_from_db()
    assert user.password_set_at == FINISHED_AT


def test_no_notice_for_a_new_account_or_a_superseded_change(
    smtp: MailCatcher, username, django_capture_on_commit_callbacks
):
    user = person(username)
    with django_capture_on_commit_callbacks(execute=True):
        result(user, Operation.CREATE_USER)
        result(user, Operation.SET_PASSWORD, reason=REASON_SUPERSEDED)
    user.refresh_from_db()
    assert user.password_set_at == FINISHED_AT  # the new account's password counts for the reminders
    assert smtp.mails_to(user.email) == []


def test_the_notice_speaks_the_language_the_person_last_used(
    smtp: MailCatcher, username, django_capture_on_commit_callbacks
):
    user = person(username, language="pt-br")
    with django_capture_on_commit_callbacks(execute=True):
        result(user, Operation.SET_PASSWORD)
    notice = smtp.wait_for(user.email)
    assert notice.subject == "Acme Corp: sua senha foi alterada"
    assert "Se não foi você, outra pessoa conhece sua senha" in notice.text


# --- reminders before a password expires ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_before_expiry", "sent", "due"),
    [
        (20, None, None),
        (14, None, 14),
        (10, None, 14),
        (10, 14, None),
        (2, 14, 3),
        (2, None, 3),  # found late: only the latest reminder
        (2, 3, None),
        (-1, 3, EXPIRED),
        (-1, EXPIRED, None),
    ],
)
def test_which_reminder_is_due(days_before_expiry, sent, due):
    now = datetime(2027, 1, 1, tzinfo=UTC)
    assert reminder_due(now + timedelta(days=days_before_expiry), now, (14, 3), sent) == due


@pytest.fixture
def expiring_policy(settings):
    settings.PASSWORD_POLICY = default_password_policy(max_age_days=90, min_age_days=1)
    settings.PASSWORD_EXPIRY_REMINDER_DAYS = (14, 3)
    return settings


def test_reminders_go_out_once_each_then_once_when_expired(expiring_policy, smtp: MailCatcher, username):
    set_at = timezone.now() - timedelta(days=80)  # expires in 10 days
    user = person(username, password_set_at=set_at)
    other = person(username + "b", password_set_at=timezone.now())  # a fresh password: nothing

    assert send_password_expiry_reminders() == 1
    reminder = smtp.wait_for(user.email)
    assert reminder.subject == "Acme Corp: your password expires in 10 days"
    assert "Choose a new one before then" in reminder.text
    assert reminder.link("/account/password/") == "https://testserver/account/password/"
    assert reminder.link("/password/reset/") == "https://testserver/password/reset/"
    assert send_password_expiry_reminders() == 0  # idempotent: the job runs every hour

    assert send_password_expiry_reminders(now=set_at + timedelta(days=88)) == 1
    assert "expires in 2 days" in smtp.wait_for(user.email, count=2).subject
    assert send_password_expiry_reminders(now=set_at + timedelta(days=91)) == 1
    expired = smtp.wait_for(user.email, count=3)
    assert expired.subject == "Acme Corp: your password has expired"
    assert "Sign in here with it once more to choose a new one" in expired.text
    assert smtp.mails_to(other.email) == []
    send_password_expiry_reminders(now=set_at + timedelta(days=200))  # the other password has expired by then
    assert len(smtp.mails_to(user.email)) == 3


def test_a_new_password_starts_the_reminders_over(expiring_policy, smtp: MailCatcher, username):
    user = person(username, password_set_at=timezone.now() - timedelta(days=80))
    assert send_password_expiry_reminders() == 1
    user.note_password_set(timezone.now())
    assert send_password_expiry_reminders(now=timezone.now() + timedelta(days=80)) == 1
    assert smtp.wait_for(user.email, count=2)


def test_no_reminders_without_a_maximum_age_or_days(settings, smtp: MailCatcher, username):
    user = person(username, password_set_at=timezone.now() - timedelta(days=400))
    settings.PASSWORD_POLICY = default_password_policy()  # never expires
    assert send_password_expiry_reminders() == 0
    settings.PASSWORD_POLICY = default_password_policy(max_age_days=90)
    settings.PASSWORD_EXPIRY_REMINDER_DAYS = ()
    assert send_password_expiry_reminders() == 0
    assert smtp.mails_to(user.email) == []


def test_a_reminder_in_spanish(expiring_policy, smtp: MailCatcher, username):
    user = person(username, language="es", password_set_at=timezone.now() - timedelta(days=89, hours=12))
    assert send_password_expiry_reminders() == 1
    reminder = smtp.wait_for(user.email)
    assert reminder.subject == "Acme Corp: tu contraseña caduca en 1 día"
    assert "Elige una nueva antes" in reminder.text
