"""The Celery task of the portal's consumer (`es4ps-portal consume`): one per result event."""

from __future__ import annotations

import logging
import time

from celery.exceptions import Reject
from django.db import DatabaseError
from es4ps_contract.events import ResultEvent
from es4ps_contract.tasks import RESULT_TASK_NAME

from es4ps_portal.broker import app

from .results import record_result_event

logger = logging.getLogger(__name__)


@app.task(name=RESULT_TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def record_result(message: object) -> None:
    """Record one result event from a directory worker."""
    try:
        event = ResultEvent.from_message(message)
    except ValueError as exc:
        # A malformed event can never be recorded; requeueing it would loop forever.
        logger.warning("dropping a malformed result event: %s", exc)
        return
    try:
        record_result_event(event)
    except DatabaseError as exc:
        logger.error("cannot record the result of task %s yet: %s", event.task_id, type(exc).__name__)
        time.sleep(2)  # do not spin while the database is away
        raise Reject("database unavailable", requeue=True) from None
