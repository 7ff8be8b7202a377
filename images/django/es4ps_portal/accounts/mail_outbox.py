"""The mail relay: sends the mails requests queued (QueuedMail), a thread of `es4ps-portal consume`.

A round takes the due rows in the order they were written, builds each
(`mail.build`: the token issued, the mail rendered) and hands it to the mail
server. A sent mail's row goes; one the server did not take keeps its
rendered message and is tried again later (after 30 s, 1, 2, 4 min), then
dropped with a log line; a mail with nothing to send (no account for a reset
address, a registration's mails used up) goes without a trace beyond a
count. Rows are deleted, so a link lives in the database only while its mail
waits for the server.

Several replicas sharing a PostgreSQL database each run a relay; a round runs
under an advisory lock (`database.locks`), so no mail is sent twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import connection
from django.db.models import Q
from django.utils import timezone
from prometheus_client import Counter

from es4ps_portal.database.locks import MAIL_RELAY_LOCK, advisory_lock
from es4ps_portal.database.rounds import run_rounds_forever

from . import mail
from .models import QueuedMail

logger = logging.getLogger(__name__)

MAILS = Counter(
    "es4ps_portal_mails",
    "Mails the relay handled, by kind (verify, reset, reset_by_address, notice) and outcome: sent, retried (the"
    " server did not take it yet), failed (given up), nothing (no mail to send: no account for a reset address,"
    " the registration's mails used up).",
    ["kind", "outcome"],
)
BATCH = 50
IDLE_POLL_S = 0.5
# A mail the server did not take is tried again this long after each failure, then dropped.
RETRY_DELAYS = (timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4))


def _due():
    now = timezone.now()
    return QueuedMail.objects.filter(Q(not_before__isnull=True) | Q(not_before__lte=now)).order_by("id")


def _handle(queued: QueuedMail) -> str:
    """Build (once) and send one queued mail; the outcome's word for MAILS."""
    if queued.message is None:
        queued.message = mail.build(queued)
        if queued.message is None:
            queued.delete()
            return "nothing"
    if mail.deliver(queued.message, queued.kind):
        queued.delete()
        return "sent"
    if queued.attempts >= len(RETRY_DELAYS) or not mail.server_configured():
        logger.error("a %s mail was not taken by the mail server %d times: dropped", queued.kind, queued.attempts + 1)
        queued.delete()
        return "failed"
    queued.not_before = timezone.now() + RETRY_DELAYS[queued.attempts]
    queued.attempts += 1
    queued.save(update_fields=["message", "attempts", "not_before"])
    return "retried"


def relay_round(limit: int = BATCH) -> int:
    """Handle up to `limit` due mails; returns how many. Nothing while another replica's relay has its turn."""
    handled = 0
    with advisory_lock(connection, MAIL_RELAY_LOCK, wait=False) as my_turn:
        if not my_turn:
            return 0
        for queued in _due().select_related("user")[:limit]:
            MAILS.labels(queued.kind, _handle(queued)).inc()
            handled += 1
    return handled


def relay_forever() -> None:
    """Run rounds until the process ends: at once after a full round, every IDLE_POLL_S otherwise."""
    run_rounds_forever(relay_round, batch=BATCH, idle_s=IDLE_POLL_S, what="the mail relay's round")
