"""The outbox relay: hands the tasks the portal wrote to the broker, in the order they were written.

`publishing` writes each task (its validated fields, any password sealed) in
the transaction of the change it belongs to; the relay, a thread of the
consumer (`es4ps-portal consume`), publishes them. A round takes the oldest
unpublished tasks that are not held (by id, the order they were written),
signs each as it sends it, publishes it with publisher confirms and marks it
published once the broker has confirmed it, dropping its fields (and with them
the sealed password). A publish that fails ends the round: that task and every
later one wait for the next round (after a backoff), so the tasks of one
account always reach the broker in the order they were written, however long
the broker is away.

Signed when sent: an envelope's issue time (`iat`) is when it left the
portal, not when its change was made, so the envelope's lifetime
(es4ps_contract.signing) covers only its time in the broker, however long the
broker was away or a held create waited for its address's proof; and the
issue times of one account's tasks follow the order they were written.

The relay also asks a worker for the domain's computers now and then
(`computers.report_if_due`), as a task like any other.

A held task (a new account's create, until the person proves the address:
`publishing.register`) is left where it is; tasks written after it go on.

Duplicates are harmless: a relay that dies between the broker's confirmation
and the mark publishes that task again, and the workers apply a task id once
(es4ps_samba.worker.applied).

Several replicas share one PostgreSQL database and each runs a relay: a
round runs only under an advisory lock (`database.locks`), so one relay
publishes at a time and the others wait for their turn. Rows taken with
`FOR UPDATE SKIP LOCKED` by two relays at once would not do: each would
publish a part of one account's tasks, in parallel, in either order.
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, QuerySet
from django.utils import timezone
from es4ps_contract.keys import load_signing_key
from es4ps_contract.signing import sign_envelope
from es4ps_contract.tasks import Operation
from nacl.signing import SigningKey

from es4ps_portal.broker import PublishError, publish
from es4ps_portal.database.locks import OUTBOX_RELAY_LOCK, advisory_lock

from . import computers
from .metrics import (
    OUTBOX_OLDEST_AGE,
    OUTBOX_TASKS,
    PENDING_REGISTRATION_CAP,
    PENDING_REGISTRATIONS,
    PUBLISH_FAILURES,
    TASKS_PUBLISHED,
)
from .models import ProvisioningTask
from .pending import unconfirmed

logger = logging.getLogger(__name__)

# Tasks per round; a full round is followed by the next at once.
BATCH = 100
# An empty outbox is looked at this often: the delay between a registration and its publish.
IDLE_POLL_S = 0.5
# How often the relay sees whether the domain's computers are due for a report (`computers.report_if_due`).
REPORT_CHECK_EVERY_S = 30.0
# After a failed publish, wait 1, 2, 4 ... up to this long before the next round.
BACKOFF_MAX_S = 10.0


@functools.cache
def _signing_key() -> SigningKey:
    return load_signing_key(settings.SIGNING_PRIVATE_KEY_FILE)


def outbox_waiting() -> QuerySet[ProvisioningTask]:
    """The tasks still to publish, held ones aside, in the order they were written (the index task_outbox_ready)."""
    return ProvisioningTask.objects.filter(published_at=None, held=False).order_by("id")


def relay_round(limit: int = BATCH) -> tuple[int, bool]:
    """Publish up to `limit` waiting tasks in order; returns (how many were published, whether a publish failed).

    Does nothing (0, False) while another replica's relay holds the turn.
    """
    published = 0
    with advisory_lock(connection, OUTBOX_RELAY_LOCK, wait=False) as my_turn:
        if not my_turn:
            return 0, False
        waiting = outbox_waiting().values_list("pk", "task_id", "operation", "payload")[:limit]
        for pk, task_id, operation, payload in waiting:
            envelope = sign_envelope(_signing_key(), Operation(operation), str(task_id), payload)
            try:
                publish(Operation(operation).task_name, envelope, str(task_id))
            except PublishError:
                PUBLISH_FAILURES.inc()
                return published, True
            ProvisioningTask.objects.filter(pk=pk).update(published_at=timezone.now(), payload=None)
            TASKS_PUBLISHED.labels(operation).inc()
            published += 1
    return published, False


def measure_outbox() -> tuple[int, timedelta]:
    """How many tasks wait, and how long the oldest has waited; and the unconfirmed registrations held against
    their caps (set as the consumer's gauges)."""
    waiting = outbox_waiting().aggregate(count=Count("id"), oldest=Min("created_at"))
    age = timezone.now() - waiting["oldest"] if waiting["oldest"] else timedelta(0)
    OUTBOX_TASKS.set(waiting["count"])
    OUTBOX_OLDEST_AGE.set(max(age.total_seconds(), 0.0))
    PENDING_REGISTRATIONS.set(unconfirmed().count())
    for scope, cap in settings.PENDING_REGISTRATION_LIMITS.items():
        PENDING_REGISTRATION_CAP.labels(scope).set(cap)
    return waiting["count"], age


def relay_forever() -> None:
    """Run rounds until the process ends: at once after a full round, every IDLE_POLL_S when idle, backing off
    while the broker (or the database) is away."""
    backoff, next_report_check = 0.0, 0.0
    while True:
        try:
            if time.monotonic() >= next_report_check:
                # Two replicas may both ask at once: a second report is harmless (the newest is kept).
                computers.report_if_due()
                next_report_check = time.monotonic() + REPORT_CHECK_EVERY_S
            published, failed = relay_round()
            waiting, oldest = measure_outbox()
        except Exception:  # the relay must outlive anything a round meets; the next round retries
            logger.exception("the outbox relay's round failed")
            connection.close()  # a broken connection is opened afresh next round
            published, failed, waiting, oldest = 0, True, -1, timedelta(0)
        if failed:
            backoff = min(max(backoff * 2, 1.0), BACKOFF_MAX_S)
            if waiting > 0:
                logger.warning(
                    "%d tasks wait in the outbox (oldest %d s); next try in %.0f s",
                    waiting,
                    oldest.total_seconds(),
                    backoff,
                )
            time.sleep(backoff)
            continue
        if backoff and published:
            logger.info("the broker takes tasks again: %d published, %d waiting", published, waiting)
        backoff = 0.0
        if published < BATCH:
            time.sleep(IDLE_POLL_S)
