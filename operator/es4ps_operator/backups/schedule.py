"""A domain's backup schedule: the ES4PSBackup of a due slot is created once (CloudNativePG's scheduled backups).

The schedule is read once, by `Domain` (spec.directory.backup.schedule); a
slot's backup is named after the slot, so creating it twice is a no-op, and an
operator that was away creates only the newest slot's.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from ..builders.backups import scheduled_backup
from ..domain import Domain
from ..kube import KubeApi
from . import rules
from .rules import BackupSummary


async def reconcile_schedule(
    domain: Domain, backups: Iterable[BackupSummary], api: KubeApi, now: datetime.datetime
) -> str | None:
    """Create the backup of the schedule's due slot unless it exists; the name of the one created, else None."""
    backup = domain.directory.backup
    if backup is None or domain.paused:
        return None
    slot = rules.due_slot(backup, now, domain.created)
    if slot is None:
        return None
    name = rules.scheduled_backup_name(domain, slot)
    if any(b.name == name for b in backups if b.namespace == domain.namespace):
        return None
    return name if await api.create_once(scheduled_backup(domain, name)) else None
