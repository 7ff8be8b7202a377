"""The kopf handlers of backups: thin glue between watch events and `backups.reconcile` / `backups.schedule`.

- ES4PSBackups are indexed (`index_backup`: a domain's reconciliation reads
  them for its LAST BACKUP, BackupsHealthy and a recovery); a change of one
  wakes its domain;
- a timer per domain has its backup schedule looked at (`schedule_backups`):
  the ES4PSBackup of a due slot is created once;
- each ES4PSBackup gets a daemon (`run_backup`) that has it moved on until it
  is Completed or Failed, then ends.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

import kopf

from .backups.reconcile import reconcile_backup
from .backups.rules import summarize_backup
from .backups.schedule import reconcile_schedule
from .domain import BACKUP_PLURAL, GROUP, PLURAL, VERSION, Domain, SpecError
from .handlers import BACKUPS_INDEX, all_backups, post_events, wake

# How often a domain's schedule is looked at, and a running backup's Job.
SCHEDULE_INTERVAL_S = 15.0
BACKUP_POLL_S = 5.0


@kopf.index(GROUP, VERSION, BACKUP_PLURAL, id=BACKUPS_INDEX)
def index_backup(namespace: str, body: kopf.Body, **_: Any) -> dict:
    return {namespace: summarize_backup(body)}


@kopf.on.event(GROUP, VERSION, BACKUP_PLURAL)
def wake_on_backup(namespace: str, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    wake(memo, namespace, spec.get("domain"))


@kopf.timer(GROUP, VERSION, PLURAL, interval=SCHEDULE_INTERVAL_S, initial_delay=10.0)
async def schedule_backups(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **kwargs: Any) -> None:
    """Create the backup of a due schedule slot (once: a slot's backup has the slot's name)."""
    try:
        domain = Domain.from_body(body)
    except SpecError:
        return  # the domain's reconciliation says why
    created = await reconcile_schedule(domain, all_backups(kwargs), memo.api, datetime.datetime.now(datetime.UTC))
    if created:
        logger.info(f"the scheduled backup {created} is due: created")


# Cancelled at once on deletion or shutdown (every step is idempotent), then given 5 s to finish.
@kopf.daemon(GROUP, VERSION, BACKUP_PLURAL, cancellation_timeout=5.0)
async def run_backup(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **kwargs: Any) -> None:
    """Have one backup moved on until it is Completed or Failed, then stop: a finished one needs nothing more."""
    while True:
        result = await reconcile_backup(body, memo.api, memo.config, all_backups(kwargs))
        post_events(body, logger, result.events)
        if result.finished:
            return
        await asyncio.sleep(BACKUP_POLL_S)
