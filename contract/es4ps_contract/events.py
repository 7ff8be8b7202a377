"""Result events: what a worker reports back to the portal after each task, signed by the worker's DC.

An event never carries a secret: the reason is a sentence meant for the person
who registered (e.g. "the username is already taken"). The reasons workers
give are declared here, marked for translation: the portal shows them in the
person's language (a reason it has no translation for is shown as it came).

Each DC's worker signs its events with its own Ed25519 key (the operator makes
one per DC; only that DC's Pod mounts it); the portal holds every DC's public
half and records only events that verify under the key of the worker they
name (`open_event`). A broker credential alone cannot report an outcome.

    {"task_id": ..., "operation": ..., "username": ..., "outcome": ..., "reason": ...,
     "worker": "<DC name: names its key>", "finished_at": <unix seconds>, "sig": "<base64 Ed25519>"}

The result of `report_computers` also carries the domain's computers
(`"computers": [...]`, see `inventory`); other events have no such key.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from .inventory import ComputerFacts, parse_report
from .texts import gettext_noop

REASON_MAX_LENGTH = 500
# The reasons a worker gives (besides passwords.PASSWORD_REFUSED_REASON).
REASON_USERNAME_TAKEN = gettext_noop("the username is already taken")
REASON_NOT_OURS = gettext_noop("the account belongs to another registration")
REASON_SUPERSEDED = gettext_noop("superseded by a newer change")
REASON_NOT_FOUND = gettext_noop("the account was not found (retries exhausted)")
REASON_NOT_BOUND = gettext_noop("the account was not made by this portal")
REASON_DELETED = gettext_noop("the registration was deleted")
REASON_WORKER_ERROR = gettext_noop("the worker could not apply the change (see its log)")
REASON_COMPUTER_NAME_TAKEN = gettext_noop("the computer name is already taken in the domain")
REASON_COMPUTER_NOT_OURS = gettext_noop("the computer was not pre-staged by this portal")
REASON_COMPUTER_NOT_FOUND = gettext_noop("the computer was not found (retries exhausted)")
REASON_COMPUTER_DELETED = gettext_noop("the computer was deleted")
# finished_at is Unix seconds; anything outside [0, 2^32) is nonsense (and breaks date conversions).
LATEST_TIME = 2.0**32


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    # The directory refused the change (e.g. password complexity) or retries ran out.
    FAILED = "failed"
    # The task broke the contract (bad signature, invalid field) and was not applied.
    REJECTED = "rejected"
    # A valid task the worker did not apply, on purpose: a newer change of the same kind was applied
    # already (`REASON_SUPERSEDED`). Never "done": the portal shows it as not applied, with the reason.
    NOT_APPLIED = "not_applied"


@dataclass(frozen=True)
class ResultEvent:
    task_id: str
    operation: str
    username: str
    outcome: Outcome
    reason: str = ""
    worker: str = ""
    finished_at: float = 0.0
    computers: tuple[ComputerFacts, ...] = ()

    def to_message(self) -> dict[str, Any]:
        """JSON-ready form, the argument of the result task."""
        message = asdict(self)
        message["outcome"] = self.outcome.value
        message["computers"] = [computer.as_dict() for computer in self.computers]
        if not self.computers:
            del message["computers"]
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
                computers=parse_report(message["computers"]) if "computers" in message else (),
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


class EventSignatureError(ValueError):
    """A result event is unsigned, names a worker whose key is unknown, or its signature does not verify."""


def _canonical(message: Mapping[str, Any]) -> bytes:
    fields = {key: value for key, value in message.items() if key != "sig"}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign_event(signing_key: SigningKey, event: ResultEvent) -> dict[str, Any]:
    """The event's message with its signature (`event.worker` names the key the portal verifies it with)."""
    message = event.to_message()
    message["sig"] = base64.b64encode(signing_key.sign(_canonical(message)).signature).decode("ascii")
    return message


def open_event(verify_keys: Mapping[str, VerifyKey], message: object) -> ResultEvent:
    """The event of a signed message, if it verifies under the key of the worker it names.

    Raises EventSignatureError (not signed, unknown worker, wrong signature) or ValueError (malformed).
    """
    if not isinstance(message, dict) or not isinstance(message.get("sig"), str):
        raise EventSignatureError("the result event is not signed")
    key = verify_keys.get(message.get("worker")) if isinstance(message.get("worker"), str) else None
    if key is None:
        raise EventSignatureError("the result event names a worker whose key is not known")
    try:
        key.verify(_canonical(message), base64.b64decode(message["sig"], validate=True))
    except (BadSignatureError, binascii.Error, ValueError, TypeError):
        raise EventSignatureError("the result event's signature is not valid") from None
    return ResultEvent.from_message({key: value for key, value in message.items() if key != "sig"})
