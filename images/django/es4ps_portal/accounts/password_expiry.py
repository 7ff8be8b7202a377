"""Reminders before a password expires (where the domain's policy sets a maximum age), and one when it has.

A password expires `maxAgeDays` after it was set; the portal knows when from
the worker's result (a new account, a change or a reset) or from pwdLastSet
read at each sign-in (a change on a domain computer). Each configured day
(ES4PS_PASSWORD_EXPIRY_REMINDER_DAYS, e.g. 14 and 3 days before) sends one
mail; a password found closer to its end than several of them gets the
latest one only, and an expired one a last mail saying how to change it in the
portal. What was sent is kept per password (`User.password_reminder_sent`),
so the job can run any time, on several replicas at once, and sends each
mail once.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from . import mail
from .models import User

logger = logging.getLogger(__name__)
# Accounts looked at per query: a campus-size directory is walked in bounded steps.
BATCH = 500
EXPIRED = 0


def reminder_due(expires_at: datetime, now: datetime, reminder_days: tuple[int, ...], sent: int | None) -> int | None:
    """Which reminder is due (days before expiry; EXPIRED once it has expired), or None when none is due or it was
    sent already (`sent`: the last one sent for this password)."""
    if now >= expires_at:
        due = EXPIRED
    else:
        reached = [days for days in reminder_days if now >= expires_at - timedelta(days=days)]
        if not reached:
            return None
        due = min(reached)
    return due if sent is None or due < sent else None


def send_password_expiry_reminders(now: datetime | None = None) -> int:
    """Mail every person whose password reached a reminder day (or expired) since the last run; return how many."""
    max_age_days = settings.PASSWORD_POLICY.max_age_days
    reminder_days = settings.PASSWORD_EXPIRY_REMINDER_DAYS
    if not max_age_days or not reminder_days:
        return 0
    now = now or timezone.now()
    max_age = timedelta(days=max_age_days)
    # Only passwords whose earliest reminder is due, not told "expired" yet.
    candidates = (
        User.objects.filter(
            is_staff=False,
            directory_state=User.DirectoryState.ENABLED,
            email_verified_at__isnull=False,
            password_set_at__lte=now - max_age + timedelta(days=max(reminder_days)),
        )
        .exclude(password_reminder_sent=EXPIRED)
        .order_by("pk")
    )
    sent = 0
    last_pk = 0
    while batch := list(candidates.filter(pk__gt=last_pk)[:BATCH]):
        last_pk = batch[-1].pk
        for user in batch:
            sent += _remind(user, user.password_set_at + max_age, now, reminder_days)
    if sent:
        logger.info("sent %d password expiry reminders", sent)
    return sent


def _remind(user: User, expires_at: datetime, now: datetime, reminder_days: tuple[int, ...]) -> bool:
    due = reminder_due(expires_at, now, reminder_days, user.password_reminder_sent)
    if due is None:
        return False
    # Claim the reminder first (another replica may be at the same person); give it back if the mail fails.
    claimed = User.objects.filter(
        pk=user.pk, password_set_at=user.password_set_at, password_reminder_sent=user.password_reminder_sent
    ).update(password_reminder_sent=due)
    if not claimed:
        return False
    days_left = max(0, math.ceil((expires_at - now) / timedelta(days=1)))
    if mail.send_password_expiry(user, expires_at, days_left):
        return True
    User.objects.filter(pk=user.pk, password_reminder_sent=due).update(
        password_reminder_sent=user.password_reminder_sent
    )
    return False
