"""Work that a thread of `es4ps-portal consume` does in rounds over a table (queued mails, registration forms)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import connection

logger = logging.getLogger(__name__)


def run_rounds_forever(work_round: Callable[[], int], *, batch: int, idle_s: float, what: str) -> None:
    """Run `work_round` until the process ends: at once after a full round (`batch` rows handled), every `idle_s`
    otherwise. A round that fails is logged as `what` failing and retried on a fresh database connection."""
    while True:
        try:
            handled = work_round()
        except Exception:  # the thread must outlive anything a round meets; the next round retries
            logger.exception("%s failed", what)
            connection.close()  # a broken connection is opened afresh next round
            handled = 0
        if handled < batch:
            time.sleep(idle_s)
