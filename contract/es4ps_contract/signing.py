"""Signed task envelopes.

Why our own envelope rather than Celery's `auth` serializer: that serializer
needs X.509 certificates, signs every message of the app (results and events
too) and switches the whole app to it; an Ed25519 signature over a small
canonical JSON document binds exactly what matters - the operation, the task
id, the time it was issued and the validated fields - and is checked before
any field is used. A task copied to another operation or id, altered in
transit, or older than `DEFAULT_MAX_AGE_S` is refused.

Envelope (JSON, the single argument of the Celery task):

    {"v": 1, "op": "create_user", "id": "<task id>", "iat": <unix seconds>,
     "payload": {...task fields...}, "sig": "<base64 Ed25519 signature>"}
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from .tasks import Operation, Task, parse_payload, validated
from .validation import computer_account_name

ENVELOPE_VERSION = 1
# A task waits in the broker at most this long; older ones are refused (a replay guard). The portal signs a
# task as it publishes it (its outbox keeps tasks unsigned), so this covers the broker and the workers only:
# a day without any DC's worker taking tasks, far beyond the retries (about 10 minutes) and the alert on a
# growing provisioning queue.
DEFAULT_MAX_AGE_S = 24 * 3600
# Tolerated clock difference between the portal and a worker.
CLOCK_SKEW_S = 300
_SIGNED_KEYS = ("v", "op", "id", "iat", "payload")


class EnvelopeError(ValueError):
    """The envelope is malformed, unsigned, wrongly signed or expired."""


@dataclass(frozen=True)
class SignedTask:
    """A verified task with what its signature binds besides the fields: its id and when it was issued.

    `issued_at` orders the tasks of one account: the worker never lets an older
    password or attribute task overwrite a newer one.
    """

    task: Task
    task_id: str
    issued_at: int


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(
        {k: document[k] for k in _SIGNED_KEYS}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode()


def sign_task(signing_key: SigningKey, task: Task, task_id: str, issued_at: int | None = None) -> dict[str, Any]:
    """Validate `task` and return its signed envelope."""
    task = validated(task)
    return sign_envelope(signing_key, task.operation, task_id, task.payload(), issued_at)


def sign_envelope(
    signing_key: SigningKey,
    operation: Operation,
    task_id: str,
    payload: dict[str, Any],
    issued_at: int | None = None,
) -> dict[str, Any]:
    """Sign `payload` as it is, without validating it. The portal uses `sign_task`; this is its last step,
    public so tests can check that a worker refuses a signed but invalid task."""
    document: dict[str, Any] = {
        "v": ENVELOPE_VERSION,
        "op": Operation(operation).value,
        "id": task_id,
        "iat": int(time.time()) if issued_at is None else issued_at,
        "payload": payload,
    }
    document["sig"] = base64.b64encode(signing_key.sign(_canonical(document)).signature).decode("ascii")
    return document


def envelope_username(envelope: object) -> str:
    """The username (or computer account) an envelope claims, unverified: only to let the portal match a rejection
    to its task."""
    payload = envelope.get("payload") if isinstance(envelope, dict) else None
    if not isinstance(payload, dict):
        return ""
    username, computer = payload.get("username"), payload.get("computer")
    if not isinstance(username, str) and isinstance(computer, str):
        username = computer_account_name(computer.upper().removesuffix("$"))
    return username[:64] if isinstance(username, str) else ""


def open_task(
    verify_key: VerifyKey,
    envelope: object,
    *,
    operation: Operation,
    task_id: str | None,
    now: float | None = None,
    max_age_s: int = DEFAULT_MAX_AGE_S,
) -> SignedTask:
    """Verify an envelope received as `operation` with Celery id `task_id` and return its task.

    Raises EnvelopeError for a bad envelope and InvalidField for a bad field.
    """
    if not isinstance(envelope, dict):
        raise EnvelopeError("the task is not a signed envelope")
    if envelope.get("v") != ENVELOPE_VERSION:
        raise EnvelopeError("the envelope version is not supported")
    if set(envelope) != {*_SIGNED_KEYS, "sig"}:
        raise EnvelopeError("the envelope has missing or unexpected keys")
    try:
        signature = base64.b64decode(envelope["sig"], validate=True)
        verify_key.verify(_canonical(envelope), signature)
    except (BadSignatureError, binascii.Error, ValueError, TypeError):
        raise EnvelopeError("the task signature is not valid") from None
    if envelope["op"] != operation.value:
        raise EnvelopeError("the envelope was signed for another operation")
    if task_id is not None and envelope["id"] != task_id:
        raise EnvelopeError("the envelope was signed for another task id")
    issued_at = envelope["iat"]
    now = time.time() if now is None else now
    if not isinstance(issued_at, int) or isinstance(issued_at, bool) or issued_at > now + CLOCK_SKEW_S:
        raise EnvelopeError("the task was issued in the future")
    if now - issued_at > max_age_s:
        raise EnvelopeError("the task has expired")
    if not isinstance(envelope["id"], str) or not envelope["id"]:
        raise EnvelopeError("the envelope's task id is not a string")
    return SignedTask(parse_payload(operation, envelope["payload"]), envelope["id"], issued_at)
