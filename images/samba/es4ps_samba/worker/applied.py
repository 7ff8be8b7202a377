"""The record of tasks this DC's worker applied: a task id is applied once, whatever arrives later.

A signed task stays valid for a day after the portal published it (it may
wait that long in the broker), so a captured one could be published again. The worker records each task id
it finished, with its outcome, in a small SQLite file on the DC's volume
(it survives restarts of the Pod); a task id seen before is not applied
again, its recorded outcome is reported once more (a redelivery after a crash
is handled the same way). Entries older than the envelopes' maximum age are
dropped: such tasks are refused by their signature check anyway.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path

from es4ps_contract.events import Outcome
from es4ps_contract.signing import CLOCK_SKEW_S, DEFAULT_MAX_AGE_S

FILE_NAME = "applied-tasks.sqlite3"
# How long an entry is kept: as long as its task's envelope could still be accepted.
KEEP_S = DEFAULT_MAX_AGE_S + CLOCK_SKEW_S
_PRUNE_EVERY_S = 3600


@dataclasses.dataclass(frozen=True)
class Applied:
    outcome: Outcome
    reason: str
    finished_at: float


class AppliedTasks:
    """Task ids with their outcome; safe for the worker's processes to share (SQLite locking)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE_NAME
        self._db: sqlite3.Connection | None = None
        self._pruned_at = 0.0

    def _connection(self) -> sqlite3.Connection:
        # Opened lazily in each process: a connection must not cross the prefork pool's fork.
        if self._db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS applied ("
                " task_id TEXT PRIMARY KEY, outcome TEXT NOT NULL, reason TEXT NOT NULL, finished_at REAL NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS applied_finished_at ON applied (finished_at)")
            self._db = db
        return self._db

    def check_writable(self) -> None:
        """Open (and create) the file now, so a worker without its state directory fails at start."""
        self._connection()
        self.close()  # each pool process opens its own

    def get(self, task_id: str) -> Applied | None:
        row = (
            self._connection()
            .execute("SELECT outcome, reason, finished_at FROM applied WHERE task_id = ?", (task_id,))
            .fetchone()
        )
        return Applied(Outcome(row[0]), row[1], row[2]) if row else None

    def record(self, task_id: str, outcome: Outcome, reason: str, finished_at: float) -> None:
        db = self._connection()
        db.execute(
            "INSERT OR IGNORE INTO applied (task_id, outcome, reason, finished_at) VALUES (?, ?, ?, ?)",
            (task_id, outcome.value, reason, finished_at),
        )
        now = time.time()
        if now - self._pruned_at > _PRUNE_EVERY_S:
            db.execute("DELETE FROM applied WHERE finished_at < ?", (now - KEEP_S,))
            self._pruned_at = now

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
