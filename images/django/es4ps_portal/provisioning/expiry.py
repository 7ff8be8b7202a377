"""Unconfirmed registrations expire: dropped at once, nothing sent to the directory (it never saw them).

A registration of the previous release (its account created, disabled, when it
registered) expires as it did then: its tokens go at once, "delete user" is
queued, and the portal user goes once the directory account is gone.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from es4ps_contract.tasks import Operation

from es4ps_portal.accounts.models import EmailToken, User
from es4ps_portal.audit.models import AuditRecord
from es4ps_portal.audit.records import Actor

from .metrics import REGISTRATIONS_EXPIRED
from .models import ProvisioningTask
from .publishing import delete_account, drop_registration

logger = logging.getLogger(__name__)
# Registrations looked at per round: a campus-size backlog expires in bounded steps.
BATCH = 500


def expired_registrations(cutoff: datetime) -> QuerySet[User]:
    """Registrations unverified since before `cutoff` whose delete is not queued, oldest first."""
    delete_queued = ProvisioningTask.objects.filter(
        user=OuterRef("pk"), operation=Operation.DELETE_USER.value, state=ProvisioningTask.State.QUEUED
    )
    return (
        # Imported people waiting to claim their accounts are not registrations: they never expire.
        User.objects.filter(is_staff=False, email_verified_at=None, date_joined__lt=cutoff, imported_at=None)
        .exclude(Exists(delete_queued))
        .order_by("date_joined", "pk")  # the order of the index user_unverified_joined: no sort, no scan
    )


def expire_unverified_registrations() -> int:
    """Drop registrations left unverified too long (or, of the previous release, queue their delete); return how many.

    Expired: not staff, not imported, no verified address, registered more than
    UNVERIFIED_RETENTION_HOURS ago (new mails do not extend it, so resending
    cannot keep a name and an address held). One whose create is still held
    is forgotten with it: nothing goes to the directory, the username and the
    address are free at once. One of the previous release has its mailed
    tokens dropped at once and its delete queued; its portal user goes when
    the delete succeeds (`results`). Safe to run on several replicas at once
    and again after a failure: a registration whose delete is still queued is
    left alone, a failed one is tried again.
    """
    if not settings.UNVERIFIED_RETENTION_HOURS:
        return 0
    expired = expired_registrations(timezone.now() - timedelta(hours=settings.UNVERIFIED_RETENTION_HOURS))
    count = 0
    while batch := list(expired[:BATCH]):
        for user in batch:
            if drop_registration(user, actor=Actor.portal(), action=AuditRecord.Action.EXPIRE_REGISTRATION):
                continue
            with transaction.atomic():
                EmailToken.objects.filter(user=user, purpose=EmailToken.Purpose.VERIFY_EMAIL).delete()
                delete_account(user, actor=Actor.portal(), action=AuditRecord.Action.EXPIRE_REGISTRATION)
        count += len(batch)
        REGISTRATIONS_EXPIRED.inc(len(batch))
    if count:
        logger.info("expired %d unverified registrations (older than %d h)", count, settings.UNVERIFIED_RETENTION_HOURS)
    return count
