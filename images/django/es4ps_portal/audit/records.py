"""Writing the audit trail: who acted (`Actor`) and `record()`, called in the transaction of the change itself.

A record written in the change's transaction is committed with it or not at
all: there is no directory change without its record, and no record of a
change that rolled back.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass

from django.http import HttpRequest

from es4ps_portal.client_address import client_address

from .models import DETAIL_MAX_LENGTH, AuditRecord


def _address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


@dataclass(frozen=True)
class Actor:
    """Who does something: a person, a staff member, the portal itself or a directory worker."""

    name: str
    kind: str
    address: str | None = None

    @classmethod
    def of(cls, request: HttpRequest, name: str | None = None) -> Actor:
        """Whoever sent `request` (its signed-in user, else `name`: the person registering or following a link)."""
        user = request.user
        signed_in = user.is_authenticated
        kind = AuditRecord.ActorKind.STAFF if signed_in and user.is_staff else AuditRecord.ActorKind.PERSON
        return cls(
            user.username if signed_in else (name or ""),
            kind,
            _address(client_address(request)),
        )

    @classmethod
    def portal(cls) -> Actor:
        return cls("es4ps-portal", AuditRecord.ActorKind.SYSTEM)

    @classmethod
    def worker(cls, name: str) -> Actor:
        return cls(name or "directory", AuditRecord.ActorKind.DIRECTORY)


def record(
    action: str,
    actor: Actor,
    *,
    subject=None,
    outcome: str = AuditRecord.Outcome.SUCCEEDED,
    task_id: uuid.UUID | str | None = None,
    detail: str = "",
) -> AuditRecord:
    """Append one record; `subject` is the account acted on (a User, or anything with a `username` and a
    `registration_id`: a computer), if any."""
    return AuditRecord.objects.create(
        actor=actor.name[:255],
        actor_kind=actor.kind,
        address=actor.address,
        action=action,
        subject=subject.username if subject is not None else "",
        registration=subject.registration_id if subject is not None else None,
        outcome=outcome,
        task_id=task_id,
        detail=detail[:DETAIL_MAX_LENGTH],
    )
