"""Result events: what a worker reports back to the portal after each task.

An event never carries a secret: the reason is a sentence meant for the person
who registered (e.g. "the username is already taken"). The reasons workers
give are declared here, marked for translation: the portal shows them in the
person's language (a reason it has no translation for is shown as it came).
"""

from __future__ import annotations

import enum
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from .texts import gettext_noop

REASON_MAX_LENGTH = 500
# The reasons a worker gives (besides passwords.PASSWORD_REFUSED_REASON).
REASON_USERNAME_TAKEN = gettext_noop("the username is already taken")
REASON_NOT_OURS = gettext_noop("the account belongs to another registration")
REASON_SUPERSEDED = gettext_noop("superseded by a newer change")
REASON_NOT_FOUND = gettext_noop("the account was not found (retries exhausted)")
REASON_UNAVAILABLE = gettext_noop("the directory is unavailable (retries exhausted)")
# finished_at is Unix seconds; anything outside [0, 2^32) is nonsense (and breaks date conversions).
LATEST_TIME = 2.0**32


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    # The directory refused the change (e.g. password complexity) or retries ran out.
    FAILED = "failed"
    # The task broke the contract (bad signature, invalid field) and was not applied.
    REJECTED = "rejected"


@dataclass(frozen=True)
class ResultEvent:
    task_id: str
    operation: str
    username: str
    outcome: Outcome
    reason: str = ""
    worker: str = ""
    finished_at: float = 0.0

    def to_message(self) -> dict[str, Any]:
        """JSON-ready form, the argument of the result task."""
        message = asdict(self)
        message["outcome"] = self.outcome.value
        return message

    @classmethod
    def from_message(cls, message: object) -> ResultEvent:
        """Rebuild an event from a message; raises ValueError when it is malformed."""
        if not isinstance(message, dict):
            raise ValueError("a result event must be a mapping")
        try:
            event = cls(
                task_id=str(message["task_id"])[:255],
                operation=str(message["operation"])[:32],
                username=str(message.get("username", ""))[:64],
                outcome=Outcome(message["outcome"]),
                reason=str(message.get("reason", ""))[:REASON_MAX_LENGTH],
                worker=str(message.get("worker", ""))[:255],
                finished_at=float(message.get("finished_at", 0.0)),
            )
        except (KeyError, TypeError, OverflowError) as exc:
            raise ValueError(f"malformed result event: {exc}") from None
        if not math.isfinite(event.finished_at) or not 0 <= event.finished_at < LATEST_TIME:
            raise ValueError("malformed result event: finished_at is not a time")
        return event


def result_event(
    task_id: str, operation: str, username: str, outcome: Outcome, reason: str = "", worker: str = ""
) -> ResultEvent:
    """A result event stamped with the current time and a bounded reason."""
    return ResultEvent(task_id, operation, username, outcome, reason[:REASON_MAX_LENGTH], worker, time.time())
