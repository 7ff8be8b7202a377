"""The workers' result events: recorded once per task, and the account's directory state that follows (a
computer's and the domain's list of computers: `computers`).

A password the directory took (a new account's, a change or a reset) is noted
for the expiry reminders; a change or reset is told to the account's owner by
mail, so a password changed by somebody else does not go unnoticed.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone
from es4ps_contract.events import REASON_SUPERSEDED, Outcome, ResultEvent
from es4ps_contract.tasks import Operation

from es4ps_portal.accounts import mail
from es4ps_portal.accounts.models import User
from es4ps_portal.audit.models import AuditRecord
from es4ps_portal.audit.records import Actor, record

from . import computers, publishing
from .metrics import PROVISIONING_DURATION, RESULTS
from .models import Computer, ProvisioningTask

logger = logging.getLogger(__name__)

_STATE_AFTER_SUCCESS = {
    Operation.CREATE_USER: User.DirectoryState.CREATED,
    Operation.ENABLE_USER: User.DirectoryState.ENABLED,
    Operation.DISABLE_USER: User.DirectoryState.DISABLED,
    Operation.DELETE_USER: User.DirectoryState.NONE,
}
_TASK_STATE = {Outcome.SUCCEEDED: ProvisioningTask.State.DONE, Outcome.NOT_APPLIED: ProvisioningTask.State.NOT_APPLIED}
# States a late "created" must not undo (results of two workers can cross), and that a failed
# enable leaves as they are (staff enabling a disabled account again).
_SETTLED = (User.DirectoryState.ENABLED, User.DirectoryState.DISABLED)


def _find_task(task_id: str) -> ProvisioningTask | None:
    # The row is committed before the relay publishes its task, so a result never finds it missing in passing.
    try:
        uuid.UUID(task_id)
    except ValueError:
        return None
    return ProvisioningTask.objects.select_related("user", "computer").filter(task_id=task_id).first()


def _locked(task: ProvisioningTask) -> ProvisioningTask:
    """The task's row and its account's or computer's, locked until the transaction ends: two consumers' results
    for one account (its create and its enable) must not overwrite each other's state. The account or computer
    first, as the portal's other writers lock it; each row by its own query, as PostgreSQL locks no row on the
    nullable side of an outer join (a task has an account or a computer, or neither)."""
    if task.user_id is not None:
        User.objects.select_for_update().filter(pk=task.user_id).first()
    elif task.computer_id is not None:
        Computer.objects.select_for_update().filter(pk=task.computer_id).first()
    return ProvisioningTask.objects.select_for_update(of=("self",)).select_related("user", "computer").get(pk=task.pk)


def directory_state(current: str, operation: Operation, outcome: Outcome) -> str:
    """The account's directory state after a task's outcome."""
    if outcome is Outcome.SUCCEEDED:
        if operation is Operation.CREATE_USER and current in _SETTLED:
            return current
        return _STATE_AFTER_SUCCESS.get(operation, current)
    if outcome is Outcome.NOT_APPLIED:
        return current  # a newer change of the same kind decides, with its own result
    if operation in (Operation.CREATE_USER, Operation.ENABLE_USER) and current not in _SETTLED:
        return User.DirectoryState.FAILED
    return current


def _account_deleted(task: ProvisioningTask, outcome: Outcome) -> bool:
    """The directory account is gone (expired, refused, or deleted by staff): the portal user goes too."""
    return outcome is Outcome.SUCCEEDED and task.operation == Operation.DELETE_USER.value and not task.user.is_staff


def _password_set(task: ProvisioningTask, event: ResultEvent) -> bool:
    """This task set the account's password (not superseded by a newer change, whose own result says so)."""
    return (
        event.outcome is Outcome.SUCCEEDED
        and task.operation in (Operation.CREATE_USER.value, Operation.SET_PASSWORD.value)
        and event.reason != REASON_SUPERSEDED
    )


def _claimed(task: ProvisioningTask, event: ResultEvent, new_state: str) -> bool:
    """The worker adopted an imported person's account for their claim (publishing.claim_imported): it is to be
    enabled now, as a registration's account is once its address is proven."""
    return (
        event.outcome is Outcome.SUCCEEDED
        and task.operation == Operation.CREATE_USER.value
        # The import sends nothing to the directory: an imported person's only create is their claim's.
        and task.user.imported_at is not None
        and new_state == User.DirectoryState.CREATED
    )


def _audit_result(task: ProvisioningTask, event: ResultEvent, subject) -> None:
    """The audit record of a task's result, for the account or computer it acted on."""
    detail = f"{task.label}: {event.reason}" if event.reason else str(task.label)
    record(
        AuditRecord.Action.DIRECTORY_RESULT,
        Actor.worker(event.worker),
        subject=subject,
        outcome=event.outcome.value,
        task_id=task.task_id,
        detail=detail,
    )


def _record_account_result(task: ProvisioningTask, event: ResultEvent, finished_at: datetime) -> None:
    """What an account task's result changes: the account's state, its audit record, the password notices."""
    user = task.user
    new_state = directory_state(user.directory_state, Operation(task.operation), event.outcome)
    if new_state != user.directory_state:
        User.objects.filter(pk=user.pk).update(directory_state=new_state)
    _audit_result(task, event, user)
    if _claimed(task, event, new_state):
        publishing.enable_registration(user, actor=Actor.portal(), action=AuditRecord.Action.CLAIM_ACCOUNT)
    if _password_set(task, event):
        user.note_password_set(finished_at)
        if task.operation == Operation.SET_PASSWORD.value:
            # Changed or reset: the owner hears of it (a takeover must not go unnoticed), once it is done.
            transaction.on_commit(lambda: mail.send_password_changed(user, finished_at))
    if _account_deleted(task, event.outcome):
        user.delete()  # with its tasks and tokens: the username and the address are free again


def record_result_event(event: ResultEvent) -> bool:
    """Record a worker's result for one of our tasks; returns False when it was ignored.

    Idempotent: the same event delivered twice changes nothing the second time.
    """
    task = _find_task(event.task_id)
    if task is None:
        logger.warning("ignoring a result for unknown task %s", event.task_id)
        return False
    if event.operation != task.operation or event.username != task.subject_name:
        logger.warning("ignoring a result for task %s that names another operation or user", event.task_id)
        return False
    if event.computers and task.operation != Operation.REPORT_COMPUTERS.value:
        logger.warning("ignoring a result for task %s that lists computers it was not asked for", event.task_id)
        return False
    finished_at = datetime.fromtimestamp(event.finished_at, UTC) if event.finished_at else timezone.now()
    with transaction.atomic():
        task = _locked(task)
        if task.finished_at is not None and task.finished_at >= finished_at:
            return False
        task.state = _TASK_STATE.get(event.outcome, ProvisioningTask.State.FAILED)
        task.reason = event.reason
        task.worker = event.worker
        task.finished_at = finished_at
        task.save(update_fields=["state", "reason", "worker", "finished_at"])
        if task.user is not None:
            _record_account_result(task, event, finished_at)
        elif task.computer is not None:
            _audit_result(task, event, task.computer)
            computers.record_result(task, event)
        else:
            computers.record_report(task, event)
    RESULTS.labels(event.operation, event.outcome.value).inc()
    # From when the task left the portal: a held create's wait for the address's proof is the person's time.
    started_at = task.published_at or task.created_at
    PROVISIONING_DURATION.labels(event.operation).observe(max((finished_at - started_at).total_seconds(), 0.0))
    logger.info("task %s (%s for %s): %s", event.task_id, event.operation, event.username, event.outcome.value)
    return True
