"""The Celery task of the portal's consumer (`es4ps-portal consume`): one per result event.

An event counts only if it verifies under the result key of the DC it names
(es4ps_contract.events): one without a signature, from a DC whose key the
portal does not hold, or whose signature fails, is dropped and counted
(`es4ps_portal_task_results_dropped_total`), never recorded. A broker
credential alone (a worker's certificate, say) cannot report an outcome.
"""

from __future__ import annotations

import functools
import logging
import time

from celery.exceptions import Reject
from django.conf import settings
from django.db import DatabaseError
from es4ps_contract.events import EventSignatureError, open_event
from es4ps_contract.keys import load_verify_keys
from es4ps_contract.tasks import RESULT_TASK_NAME
from nacl.signing import VerifyKey

from es4ps_portal.broker import app

from .metrics import RESULTS_DROPPED
from .results import record_result_event

logger = logging.getLogger(__name__)


@functools.cache
def _load_result_keys() -> dict[str, VerifyKey]:
    return load_verify_keys(settings.RESULT_KEYS_DIR) if settings.RESULT_KEYS_DIR else {}


def result_keys(worker: object) -> dict[str, VerifyKey]:
    """The DCs' result keys; read again when an event names a DC not known yet (one was added)."""
    keys = _load_result_keys()
    if isinstance(worker, str) and worker not in keys:
        _load_result_keys.cache_clear()
        keys = _load_result_keys()
    return keys


def _drop_reason(message: object, exc: EventSignatureError) -> str:
    if not isinstance(message, dict) or "sig" not in message:
        return "unsigned"
    return "unknown_worker" if "not known" in str(exc) else "bad_signature"


@app.task(name=RESULT_TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def record_result(message: object) -> None:
    """Record one result event from a directory worker, if a DC signed it."""
    worker = message.get("worker") if isinstance(message, dict) else None
    try:
        event = open_event(result_keys(worker), message)
    except EventSignatureError as exc:
        reason = _drop_reason(message, exc)
        RESULTS_DROPPED.labels(reason).inc()
        logger.warning("dropping a result event that is not a DC's (%s): %s", reason, exc)
        return
    except ValueError as exc:
        # A malformed event can never be recorded; requeueing it would loop forever.
        RESULTS_DROPPED.labels("malformed").inc()
        logger.warning("dropping a malformed result event: %s", exc)
        return
    try:
        record_result_event(event)
    except DatabaseError as exc:
        logger.error("cannot record the result of task %s yet: %s", event.task_id, type(exc).__name__)
        time.sleep(2)  # do not spin while the database is away
        raise Reject("database unavailable", requeue=True) from None
