"""The domain's computers: what staff do to them (signed tasks, like accounts) and what the workers report.

Staff pre-stage a computer (`prestage`): the portal makes its one-time join
password, seals it for the computer's account (`NAME$`) and writes the task
to the outbox with the computer's record; the password is returned to be
shown once to the staff member and is kept nowhere (the worker sets it, the
computer's join replaces it). Disable, enable, reset (a new one-time password,
so the computer joins again), move (to an OU under the computers OU) and
delete act only on computers the portal pre-staged (`record_id`, which their
directory object carries): a computer someone else joined is listed, never
touched (the workers could not: docs/directory.md). Every action is audited
in its transaction, as for accounts (`publishing`).

A person whose policy allows it (`computers.perPerson`) pre-stages computers
of their own through the same `prestage`, with themselves as `owner`: their
record's row is locked while their computers are counted and the new one is
added, so two requests at once cannot take more places than the policy gives
(a computer whose pre-staging failed takes none).

The list itself comes from the workers: the consumer's relay asks for a
report of the domain's computers every `COMPUTERS_REPORT_INTERVAL_S`
(`report_if_due`), staff may ask for one at once (`request_report`), and
`record_report` keeps the newest report's facts.
"""

from __future__ import annotations

import secrets
import string
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from es4ps_contract.events import Outcome, ResultEvent
from es4ps_contract.tasks import (
    DeleteComputer,
    DisableComputer,
    EnableComputer,
    MoveComputer,
    Operation,
    PrestageComputer,
    ReportComputers,
    ResetComputer,
)
from es4ps_contract.validation import normalize_computer_name

from es4ps_portal.accounts.models import User
from es4ps_portal.audit.models import AuditRecord
from es4ps_portal.audit.records import Actor, record

from .models import Computer, ProvisioningTask
from .policies import computers_per_person
from .publishing import NotProvisioned, publish, seal

Action = AuditRecord.Action
# A one-time join password: long, random, and typeable at a console (no look-alike or shell-special characters).
JOIN_PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "Il1O0o")
JOIN_PASSWORD_LENGTH = 24
# A report task older than this without a result is taken as lost: the next round asks again.
REPORT_LOST_AFTER = timedelta(minutes=10)


def join_password() -> str:
    """A one-time join password (Samba's complexity rules: upper, lower and digits, 24 characters)."""
    while True:
        password = "".join(secrets.choice(JOIN_PASSWORD_ALPHABET) for _ in range(JOIN_PASSWORD_LENGTH))
        if all(
            any(c in group for c in password) for group in (string.ascii_uppercase, string.ascii_lowercase, "23456789")
        ):
            return password


def _fields(computer: Computer) -> dict[str, str]:
    return {"computer": computer.name, "computer_id": str(computer.record_id)}


def _managed(computer: Computer) -> Computer:
    """The computer's row, locked until the transaction ends, if the portal pre-staged it and it is there."""
    current = Computer.objects.select_for_update().get(pk=computer.pk)
    if current.record_id is None:
        raise NotProvisioned(_("the portal did not pre-stage this computer; manage it where it was joined"))
    if current.state != Computer.State.PRESENT:
        raise NotProvisioned(_("the computer is not in the directory (yet)"))
    if current.tasks.filter(operation=Operation.DELETE_COMPUTER.value, state=ProvisioningTask.State.QUEUED).exists():
        raise NotProvisioned(_("its deletion is under way"))
    return current


# --- what staff do (es4ps_portal.web.computer_admin checks who may) -------------------------------------------


def own_computers(person: User):
    """The computers `person` pre-staged as their own, those that take a place of their policy's first."""
    return Computer.objects.filter(owner=person).exclude(state=Computer.State.FAILED)


def _take_a_place(person: User) -> None:
    """Lock the person's record until the transaction ends and check their policy leaves them a place."""
    person = User.objects.select_for_update().get(pk=person.pk)
    allowed = computers_per_person(person.email)
    if own_computers(person).count() >= allowed:
        raise NotProvisioned(
            _("You may not pre-stage more computers: your policy allows %(count)d.") % {"count": allowed}
        )


def prestage(name: str, ou: str, *, actor: Actor, owner: User | None = None) -> tuple[Computer, str]:
    """Pre-stage the computer `name` in the OU `ou` under the computers OU: its record, its task and its audit
    record; returns the computer and its one-time join password (to show once; kept nowhere). With an `owner`,
    the computer is theirs and takes one of the places their policy gives them (refused when none is left)."""
    name = normalize_computer_name(name, "name")
    password = join_password()
    with transaction.atomic():
        if owner is not None:
            _take_a_place(owner)
        try:
            with transaction.atomic():
                computer = Computer.objects.create(
                    name=name, record_id=uuid.uuid4(), state=Computer.State.PENDING, ou=ou, owner=owner
                )
        except IntegrityError:
            raise NotProvisioned(_("a computer of this name is in the domain already")) from None
        task = PrestageComputer(sealed_password=seal(computer.username, password), ou=ou, **_fields(computer))
        publish(computer, task, Action.PRESTAGE_COMPUTER, actor)
    return computer, password


def disable(computer: Computer, *, actor: Actor) -> None:
    """Disable the computer (the worker also replaces its password: it logs nobody in from the next login)."""
    with transaction.atomic():
        current = _managed(computer)
        publish(current, DisableComputer(**_fields(current)), Action.DISABLE_COMPUTER, actor)


def enable(computer: Computer, *, actor: Actor) -> None:
    """Enable the computer (one disabled by the portal also needs a reset and a new join)."""
    with transaction.atomic():
        current = _managed(computer)
        publish(current, EnableComputer(**_fields(current)), Action.ENABLE_COMPUTER, actor)


def reset(computer: Computer, *, actor: Actor) -> str:
    """A new one-time join password (returned, to show once), so the computer can join again."""
    password = join_password()
    with transaction.atomic():
        current = _managed(computer)
        task = ResetComputer(sealed_password=seal(current.username, password), **_fields(current))
        publish(current, task, Action.RESET_COMPUTER, actor)
    return password


def move(computer: Computer, ou: str, *, actor: Actor) -> None:
    """Move the computer to the OU `ou` under the computers OU ("" is the computers OU itself)."""
    with transaction.atomic():
        current = _managed(computer)
        if current.ou == ou:
            raise NotProvisioned(_("the computer is in that OU already"))
        publish(current, MoveComputer(ou=ou, **_fields(current)), Action.MOVE_COMPUTER, actor)
        Computer.objects.filter(pk=current.pk).update(ou=ou)


def delete(computer: Computer, *, actor: Actor) -> None:
    """Delete the computer from the directory; the portal forgets it when the worker reports it done (one whose
    pre-staging failed, of which the directory has nothing, at once)."""
    with transaction.atomic():
        failed = Computer.objects.select_for_update().filter(pk=computer.pk, state=Computer.State.FAILED).first()
        if failed is not None:
            detail = "its pre-staging had failed; nothing of it was in the directory"
            record(Action.DELETE_COMPUTER, actor, subject=failed, outcome=AuditRecord.Outcome.SUCCEEDED, detail=detail)
            failed.delete()
            return
        current = _managed(computer)
        publish(current, DeleteComputer(**_fields(current)), Action.DELETE_COMPUTER, actor)


# --- the domain's list ----------------------------------------------------------------------------------------


def request_report() -> ProvisioningTask:
    """Ask a worker for the domain's computers (not audited: it changes nothing)."""
    with transaction.atomic():
        return publish(None, ReportComputers(), None, Actor.portal())


def report_if_due() -> bool:
    """Ask for a report when the last one asked is older than COMPUTERS_REPORT_INTERVAL_S (or was lost)."""
    interval = settings.COMPUTERS_REPORT_INTERVAL_S
    if interval <= 0:
        return False
    reports = ProvisioningTask.objects.filter(operation=Operation.REPORT_COMPUTERS.value)
    now = timezone.now()
    waiting = reports.filter(state=ProvisioningTask.State.QUEUED, created_at__gt=now - REPORT_LOST_AFTER)
    if waiting.exists() or reports.filter(created_at__gt=now - timedelta(seconds=interval)).exists():
        return False
    request_report()
    return True


def record_report(task: ProvisioningTask, event: ResultEvent) -> None:
    """Keep the facts of a report newer than those recorded; forget the computers it no longer lists that the
    portal did not pre-stage. Call in the result's transaction."""
    if event.outcome is not Outcome.SUCCEEDED:
        return
    reported_at = datetime.fromtimestamp(event.finished_at, UTC) if event.finished_at else timezone.now()
    newer = Computer.objects.exclude(reported_at__gte=reported_at)
    for facts in event.computers:
        values = {
            "container": facts.container,
            "operating_system": facts.operating_system,
            "os_version": facts.os_version,
            "last_logon": datetime.fromtimestamp(facts.last_logon, UTC) if facts.last_logon else None,
            "enabled": facts.enabled,
            "joined": facts.joined,
            "reported_at": reported_at,
        }
        current = Computer.objects.filter(name=facts.name).first()
        if current is not None and current.state == Computer.State.FAILED:
            continue  # a computer of that name the portal could not pre-stage: someone else's, not this row's
        if current is None:
            Computer.objects.create(name=facts.name, **values)
        elif current.reported_at is None or current.reported_at < reported_at:
            if current.state == Computer.State.PENDING and str(current.record_id) == facts.computer_id:
                values["state"] = Computer.State.PRESENT
            newer.filter(pk=current.pk).update(**values)
    listed = {facts.name for facts in event.computers}
    newer.filter(record_id=None).exclude(name__in=listed).delete()
    newer.exclude(record_id=None).filter(state=Computer.State.PRESENT).exclude(name__in=listed).update(enabled=None)
    # Reports asked before this one (answered or lost) are of no further use: the task list keeps the newest.
    ProvisioningTask.objects.filter(operation=task.operation, id__lt=task.id).delete()


def record_result(task: ProvisioningTask, event: ResultEvent) -> None:
    """What a computer task's result changes in the portal's record of it. Call in the result's transaction."""
    computer = task.computer
    operation = Operation(task.operation)
    if operation is Operation.PRESTAGE_COMPUTER:
        succeeded = event.outcome is Outcome.SUCCEEDED
        if computer.state == Computer.State.PENDING:
            state = Computer.State.PRESENT if succeeded else Computer.State.FAILED
            Computer.objects.filter(pk=computer.pk).update(state=state, enabled=True if succeeded else None)
        return
    if event.outcome is not Outcome.SUCCEEDED:
        return
    if operation is Operation.DELETE_COMPUTER:
        computer.delete()  # with its tasks; the audit trail keeps what happened
    elif operation in (Operation.ENABLE_COMPUTER, Operation.DISABLE_COMPUTER):
        Computer.objects.filter(pk=computer.pk).update(enabled=operation is Operation.ENABLE_COMPUTER)
