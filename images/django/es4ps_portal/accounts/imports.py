"""The import of ES4PS-Containers' people (`es4ps-portal manage import_es4ps_containers`): their portal records.

Each `CollegeUser` row of the old portal (`legacy_portal`) either becomes a
portal user *waiting to be claimed* (`User.DirectoryState.UNCLAIMED`,
`imported_at` set): the name and the address reserved, the names and the date
the person joined kept, no password, the address not proven to this portal;
or it is skipped with its reason. Nothing else is written: no task goes to
the directory, and nothing is ever deleted, here or there.

What is skipped, and why (`Skip`): staff rows (staff of the old portal are
not people of this one), people whose address the old portal never verified,
inactive ones, rows whose name or address the directory's tasks would refuse
or whose address is outside the allowed domains, addresses held by more than
one old row, names or addresses this portal already gives someone else. A row
imported by an earlier run is counted as such (`ALREADY_IMPORTED`): the import
can run again, or after being stopped half-way, and converge.

An imported person's directory account keeps its old password until they
claim it: they prove the address (the reset mail to the address both records
hold) and choose a password; the portal then sends the create the worker may
adopt the account with (es4ps_portal.provisioning.publishing.claim_imported).
The accounts must first be in the managed OU with their `mail`: the list the
import writes (`accounts_to_move`) is what `es4ps-samba-dc move-legacy-accounts`
reads (docs/migration.md).
"""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from es4ps_contract.validation import InvalidField, normalize_email, normalize_name, normalize_username

from es4ps_portal.audit.models import AuditRecord
from es4ps_portal.audit.records import Actor, record

from .email_domains import InvalidDomain, canonical_domain, display_domain, is_allowed
from .legacy_portal import CollegeUser
from .models import User


class Skip(enum.StrEnum):
    """Why a row of the old portal was not imported (the report's words)."""

    STAFF = "a staff row of the old portal (staff are not imported)"
    UNVERIFIED = "the old portal never verified the address"
    INACTIVE = "inactive in the old portal"
    INVALID = "not valid here"
    DOMAIN = "the address is outside the allowed domains"
    DUPLICATE_ADDRESS = "the address is held by more than one row of the old portal"
    NAME_HELD = "the name is held by someone else in this portal"
    ADDRESS_HELD = "the address is held by someone else in this portal"


IMPORTED = "imported"
ALREADY_IMPORTED = "already imported"


@dataclass(frozen=True)
class Person:
    """A row that may be imported, in the form this portal stores it."""

    username: str
    email: str
    first_name: str
    last_name: str
    row: CollegeUser


@dataclass
class Report:
    """What the import did (or, in a dry run, would do) with each row."""

    imported: list[Person] = field(default_factory=list)
    already_imported: list[Person] = field(default_factory=list)
    skipped: list[tuple[CollegeUser, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        def entry(person: Person) -> dict:
            return {"row": person.row.row, "username": person.username, "email": person.email}

        return {
            "imported": [entry(p) for p in self.imported],
            "already_imported": [entry(p) for p in self.already_imported],
            "skipped": [
                {"row": row.row, "username": row.username, "email": row.email, "reason": reason}
                for row, reason in self.skipped
            ],
            "counts": {
                IMPORTED: len(self.imported),
                ALREADY_IMPORTED: len(self.already_imported),
                "skipped": len(self.skipped),
                **collections.Counter(reason.split(":")[0] for _, reason in self.skipped),
            },
        }

    def accounts_to_move(self) -> list[dict[str, str]]:
        """The accounts the administrator's step moves into the managed OU: every imported person, by name."""
        return [{"username": p.username, "email": p.email} for p in self.imported + self.already_imported]


def _allowed_address(email: str) -> str:
    """The address as this portal stores it; InvalidDomain when outside the allowed domains."""
    local, _, domain = normalize_email(email).rpartition("@")
    domain = canonical_domain(domain)
    if not is_allowed(domain, settings.ALLOWED_EMAIL_DOMAINS):
        raise InvalidDomain(domain)
    return f"{local}@{display_domain(domain)}"


def _checked(row: CollegeUser) -> Person | str:
    """The row as a person to import, or why it is skipped (before looking at this portal)."""
    if row.staff:
        return Skip.STAFF
    if not row.verified:
        return Skip.UNVERIFIED
    if not row.active:
        return Skip.INACTIVE
    try:
        username = normalize_username(row.username)
        first_name = normalize_name(row.first_name, "first name")
        last_name = normalize_name(row.last_name, "last name")
    except InvalidField as exc:
        return f"{Skip.INVALID}: {exc}"
    try:
        email = _allowed_address(row.email)
    except InvalidField as exc:
        return f"{Skip.INVALID}: {exc}"
    except InvalidDomain:
        return Skip.DOMAIN
    return Person(username, email, first_name, last_name, row)


def _against_this_portal(person: Person) -> str:
    """IMPORTED (to do), ALREADY_IMPORTED, or why the portal's own people stop it."""
    holder = User.objects.named(person.username).first()
    if holder is not None:
        same = holder.imported_at is not None and holder.email.casefold() == person.email.casefold()
        return ALREADY_IMPORTED if same else Skip.NAME_HELD
    if User.objects.with_address(person.email).exists():
        return Skip.ADDRESS_HELD
    return IMPORTED


def _create(person: Person) -> None:
    """The portal user of an imported person, with its audit record; one transaction."""
    with transaction.atomic():
        user = User(
            username=person.username,
            email=person.email,
            first_name=person.first_name,
            last_name=person.last_name,
            date_joined=person.row.joined,
            directory_state=User.DirectoryState.UNCLAIMED,
            imported_at=timezone.now(),
        )
        user.set_unusable_password()
        user.save()
        detail = f"row {person.row.row} of ES4PS-Containers' portal; waiting to be claimed"
        record(AuditRecord.Action.IMPORT_ACCOUNT, Actor.portal(), subject=user, detail=detail)


def import_people(rows: list[CollegeUser], *, dry_run: bool = False) -> Report:
    """Import `rows` (nothing written with `dry_run`); the report says what became of each."""
    report = Report()
    checked = [(row, _checked(row)) for row in rows]
    addresses = collections.Counter(p.email.casefold() for _, p in checked if isinstance(p, Person))
    for row, person in checked:
        if not isinstance(person, Person):
            report.skipped.append((row, str(person)))
            continue
        if addresses[person.email.casefold()] > 1:
            report.skipped.append((row, Skip.DUPLICATE_ADDRESS.value))
            continue
        verdict = _against_this_portal(person)
        if verdict == ALREADY_IMPORTED:
            report.already_imported.append(person)
        elif verdict != IMPORTED:
            report.skipped.append((row, str(verdict)))
        elif dry_run:
            report.imported.append(person)
        else:
            try:
                _create(person)
            except IntegrityError:  # taken a moment ago (a registration, or a second import running)
                report.skipped.append((row, str(_against_this_portal(person))))
                continue
            report.imported.append(person)
    return report
