"""Unverified registrations expire: they are deleted from the directory, then from the portal."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from django.utils import timezone
from es4ps_contract.events import Outcome, ResultEvent
from es4ps_contract.tasks import Operation
from es4ps_portal.accounts.models import EmailToken, User
from es4ps_portal.provisioning.expiry import expire_unverified_registrations
from es4ps_portal.provisioning.models import ProvisioningTask
from es4ps_portal.provisioning.outbox import relay_round
from es4ps_portal.provisioning.results import record_result_event
from es4ps_testkit.registration import ALLOWED_DOMAIN, unique_username

pytestmark = pytest.mark.django_db


def registration(*, age_hours: float, mail_age_hours: float | None = None, **fields) -> User:
    """A user who registered `age_hours` ago; with a verification mail sent `mail_age_hours` ago."""
    username = unique_username("x")
    user = User.objects.create(username=username, email=f"{username}@{ALLOWED_DOMAIN}", **fields)
    now = timezone.now()
    User.objects.filter(pk=user.pk).update(date_joined=now - timedelta(hours=age_hours))
    if mail_age_hours is not None:
        token = EmailToken.objects.create(
            user=user,
            purpose=EmailToken.Purpose.VERIFY_EMAIL,
            token_digest=secrets.token_hex(32),
            expires_at=now - timedelta(hours=mail_age_hours - 24),
        )
        EmailToken.objects.filter(pk=token.pk).update(created_at=now - timedelta(hours=mail_age_hours))
    return user


def operations(user: User) -> list[str]:
    return list(user.provisioning_tasks.values_list("operation", flat=True))


def result(task: ProvisioningTask, outcome: Outcome) -> ResultEvent:
    reason = "" if outcome is Outcome.SUCCEEDED else "the directory is not reachable"
    return ResultEvent(str(task.task_id), task.operation, task.user.username, outcome, reason, "dc0", 1_800_000_000.0)


def test_only_registrations_unverified_past_the_retention_expire(broker, settings):
    settings.UNVERIFIED_RETENTION_HOURS = 168
    expired = registration(age_hours=200, mail_age_hours=200)
    # Asking for new mails does not keep a registration (and its name and address) for ever.
    resent = registration(age_hours=200, mail_age_hours=10)
    recent = registration(age_hours=10, mail_age_hours=10)
    verified = registration(age_hours=200, email_verified_at=timezone.now())
    staff = registration(age_hours=200, is_staff=True)

    assert expire_unverified_registrations() == 2

    for gone in (expired, resent):
        assert operations(gone) == [Operation.DELETE_USER.value]
        assert not EmailToken.objects.filter(user=gone).exists()  # its mailed link no longer verifies anything
    for kept in (recent, verified, staff):
        assert operations(kept) == []
    assert EmailToken.objects.filter(user=recent).exists()
    # Run again (another replica, the next hour): the delete is queued, nothing is published twice.
    assert expire_unverified_registrations() == 0


def test_the_portal_user_goes_once_the_directory_account_is_deleted(broker, settings):
    settings.UNVERIFIED_RETENTION_HOURS = 24
    expired = registration(age_hours=48)
    expire_unverified_registrations()

    # A failed delete keeps the registration, and the next round tries again.
    assert record_result_event(result(expired.provisioning_tasks.get(), Outcome.FAILED))
    assert User.objects.filter(pk=expired.pk).exists()
    assert expire_unverified_registrations() == 1

    retry = expired.provisioning_tasks.get(state=ProvisioningTask.State.QUEUED)
    assert record_result_event(result(retry, Outcome.SUCCEEDED))
    assert not User.objects.filter(pk=expired.pk).exists()
    assert not ProvisioningTask.objects.filter(user_id=expired.pk).exists()


def test_a_deleted_account_takes_its_registration_along_verified_or_not_but_never_staff(settings):
    """Deletes are published to end a registration (expiry, a refusal, staff): once done, the portal forgets it."""
    person = registration(age_hours=1, email_verified_at=timezone.now())
    staff = registration(age_hours=1, is_staff=True)
    for user, task_id in (
        (person, "6f1c1d9e-4a36-4f41-9a55-2f8d8f2c1a10"),
        (staff, "7f1c1d9e-4a36-4f41-9a55-2f8d8f2c1a10"),
    ):
        task = ProvisioningTask.objects.create(task_id=task_id, user=user, operation=Operation.DELETE_USER.value)
        assert record_result_event(result(task, Outcome.SUCCEEDED))
    assert not User.objects.filter(pk=person.pk).exists()
    assert User.objects.filter(pk=staff.pk).exists()


def test_retention_zero_keeps_every_registration(settings):
    settings.UNVERIFIED_RETENTION_HOURS = 0
    old = registration(age_hours=10_000, mail_age_hours=10_000)
    assert expire_unverified_registrations() == 0
    assert operations(old) == [] and EmailToken.objects.filter(user=old).exists()


def test_with_the_broker_down_registrations_expire_and_their_deletes_wait_in_the_outbox(broker, settings):
    settings.UNVERIFIED_RETENTION_HOURS = 24
    expired = registration(age_hours=48, mail_age_hours=48)
    broker.stop()
    try:
        assert expire_unverified_registrations() == 1
        assert relay_round() == (0, True)
    finally:
        broker.start()
    assert operations(expired) == [Operation.DELETE_USER.value]
    assert not EmailToken.objects.filter(user=expired).exists()
    # Queued: the next round of expiry leaves it alone, the relay publishes it once the broker is back.
    assert expire_unverified_registrations() == 0
    assert relay_round() == (1, False)
