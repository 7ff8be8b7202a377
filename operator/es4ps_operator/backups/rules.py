"""Backups of a domain, pure decisions: when a scheduled one is due, what retention removes, what a Job's end means.

The model is CloudNativePG's: an ES4PSBackup object is one backup (on demand
when someone creates it, scheduled when the operator does on
`spec.directory.backup.schedule`); its Job copies, encrypts and stores; its
status says how it went. Retention keeps the newest `keep` completed backups
of a domain: the Job of a new backup deletes the archives of the ones that
fall out once it has stored its own, and the operator then deletes their
objects. Failed backups are kept (they say what went wrong) and never count.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Iterable, Mapping
from typing import Any

from cronsim import CronSim

from .. import naming
from ..builders.jobs import STORE_STEP
from ..domain import Backup, Domain
from ..kube import StepEnd
from ..status import Check

PENDING, RUNNING, COMPLETED, FAILED = "Pending", "Running", "Completed", "Failed"
# What the store step writes as its termination message (es4ps_samba.backup): one JSON object.
RESULT_KEYS = ("location", "sizeBytes", "sha256", "domainController")


@dataclasses.dataclass(frozen=True)
class BackupSummary:
    """The parts of an ES4PSBackup the operator decides on (kept in an index)."""

    name: str
    namespace: str
    domain: str
    phase: str
    created: str  # metadata.creationTimestamp
    completed_at: str | None
    location: str | None
    sha256: str | None
    encryption_key_secret: str | None
    reason: str
    deleting: bool = False


def summarize_backup(body: Mapping[str, Any]) -> BackupSummary:
    metadata, status = body.get("metadata", {}), body.get("status") or {}
    return BackupSummary(
        name=metadata.get("name", ""),
        namespace=metadata.get("namespace", ""),
        domain=(body.get("spec") or {}).get("domain", ""),
        phase=status.get("phase") or PENDING,
        created=metadata.get("creationTimestamp", ""),
        completed_at=status.get("completedAt"),
        location=status.get("location"),
        sha256=status.get("sha256"),
        encryption_key_secret=status.get("encryptionKeySecret"),
        reason=status.get("reason", ""),
        deleting=bool(metadata.get("deletionTimestamp")),
    )


def scheduled_backup_name(domain: Domain, slot: datetime.datetime) -> str:
    """The name of the backup of one schedule slot: the same slot always gives the same name (idempotent)."""
    return naming.child_name(domain, slot.strftime("%Y%m%d-%H%M"))


def due_slot(backup: Backup, now: datetime.datetime, since: datetime.datetime) -> datetime.datetime | None:
    """The newest slot of the schedule at or before `now` and after `since` (the domain's creation), else None.

    Only the newest: an operator that was away for a week takes one backup, not seven.
    None too without a (valid) schedule.
    """
    if not backup.schedule or backup.schedule_error:
        return None
    # cronsim counts back from just after the minute of `now`, so a slot at `now` itself is due.
    start = now.replace(second=0, microsecond=0) + datetime.timedelta(seconds=1)
    slot = next(CronSim(backup.schedule, start, reverse=True))
    return slot if slot > since else None


def of_domain(backups: Iterable[BackupSummary], domain: Domain) -> list[BackupSummary]:
    return [b for b in backups if b.namespace == domain.namespace and b.domain == domain.name and not b.deleting]


def completed_newest_first(backups: Iterable[BackupSummary]) -> list[BackupSummary]:
    return sorted((b for b in backups if b.phase == COMPLETED), key=lambda b: b.completed_at or "", reverse=True)


def beyond_keep(backups: Iterable[BackupSummary], keep: int, adding: int = 0) -> list[BackupSummary]:
    """Completed backups that retention removes once `adding` more have completed (oldest last in the list)."""
    return completed_newest_first(backups)[max(0, keep - adding) :]


def last_completed(backups: Iterable[BackupSummary]) -> BackupSummary | None:
    completed = completed_newest_first(backups)
    return completed[0] if completed else None


def newest_finished(backups: Iterable[BackupSummary]) -> BackupSummary | None:
    """The backup that finished last, failed or not (BackupsHealthy follows it)."""
    finished = [b for b in backups if b.phase in (COMPLETED, FAILED)]
    return max(finished, key=lambda b: b.completed_at or b.created, default=None)


def parse_result(message: str | None) -> dict[str, Any]:
    """The store step's termination message (JSON); {} when it wrote none or something else."""
    if not message:
        return {}
    try:
        result = json.loads(message.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}
    return {key: result[key] for key in RESULT_KEYS if isinstance(result, dict) and key in result}


def stored_result(ends: Iterable[StepEnd]) -> dict[str, Any]:
    """The result of the store step that succeeded; {} when none did (the steps before it say nothing here)."""
    for end in ends:
        if end.container == STORE_STEP and end.exit_code == 0:
            return parse_result(end.message)
    return {}


def failure_reason(ends: Iterable[StepEnd], fallback: str) -> str:
    """Why a backup failed, for people: the last line a failed step wrote, else the Job's own reason.

    Steps that succeeded wrote their results, not reasons: they are passed over.
    """
    for end in ends:
        lines = [line for line in end.message.strip().splitlines() if line.strip()] if end.exit_code else []
        if lines:
            return f"step {end.container}: {lines[-1]}"[:500]
    return fallback


def backups_check(domain: Domain, backups: list[BackupSummary]) -> Check | None:
    """BackupsHealthy: how the newest finished backup went (None: backups are not configured)."""
    backup = domain.directory.backup
    if backup is None:
        return None
    if backup.schedule_error:
        return Check(False, "InvalidSchedule", f"spec.directory.backup.schedule: {backup.schedule_error}")
    newest = newest_finished(backups)
    if newest is None:
        return Check(None, "NoBackupYet", "no backup of this domain has finished yet")
    if newest.phase == FAILED:
        return Check(False, "BackupFailed", f"the backup {newest.name} failed: {newest.reason}")
    return Check(True, "Completed", f"the backup {newest.name} completed at {newest.completed_at}")
