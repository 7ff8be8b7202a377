"""Unconfirmed registrations expire: their tokens go at once, the portal user once the directory account is gone."""

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
from .publishing import delete_account

logger = logging.getLogger(__name__)
# Registrations looked at per round: a campus-size backlog expires in bounded steps.
BATCH = 500


def expired_registrations(cutoff: datetime) -> QuerySet[User]:
    """Registrations unverified since before `cutoff` whose delete is not queued, oldest first."""
    delete_queued = ProvisioningTask.objects.filter(
        user=OuterRef("pk"), operation=Operation.DELETE_USER.value, state=ProvisioningTask.State.QUEUED
    )
    return (
        User.objects.filter(is_staff=False, email_verified_at=None, date_joined__lt=cutoff)
        .exclude(Exists(delete_queued))
        .order_by("date_joined", "pk")  # the order of the index user_unverified_joined: no sort, no scan
    )


def expire_unverified_registrations() -> int:
    """Queue "delete user" for registrations left unverified too long; return how many.

    Expired: not staff, no verified address, registered more than
    UNVERIFIED_RETENTION_HOURS ago (new mails do not extend it, so resending
    cannot keep a name and an address held). Their mailed tokens are dropped at
    once (nobody can verify them any more); the portal user goes when the
    delete succeeds (`results`), which frees the username and the address.
    Safe to run on several replicas at once and again after a failure: a
    registration whose delete is still queued is left alone, a failed one is
    tried again.
    """
    if not settings.UNVERIFIED_RETENTION_HOURS:
        return 0
    expired = expired_registrations(timezone.now() - timedelta(hours=settings.UNVERIFIED_RETENTION_HOURS))
    count = 0
    while batch := list(expired[:BATCH]):
        for user in batch:
            with transaction.atomic():
                EmailToken.objects.filter(user=user, purpose=EmailToken.Purpose.VERIFY_EMAIL).delete()
                delete_account(user, actor=Actor.portal(), action=AuditRecord.Action.EXPIRE_REGISTRATION)
        count += len(batch)
        REGISTRATIONS_EXPIRED.inc(len(batch))
    if count:
        logger.info("expired %d unverified registrations (older than %d h)", count, settings.UNVERIFIED_RETENTION_HOURS)
    return count
