"""Directory tasks for a user: publishing them (signed, password sealed) and recording their results.

Every change that needs the directory is written to the database and
published in one transaction: if the broker does not confirm the task, the
change rolls back and the person can simply try again.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from es4ps_contract.events import Outcome, ResultEvent
from es4ps_contract.keys import KeyFileError, load_sealing_public_key, load_signing_key
from es4ps_contract.sealing import seal_password
from es4ps_contract.signing import sign_task
from es4ps_contract.tasks import CreateUser, DeleteUser, EnableUser, Operation, SetPassword, Task, UpdateAttributes
from nacl.public import PublicKey
from nacl.signing import SigningKey

from es4ps_portal import broker
from es4ps_portal.broker import PublishError

from .models import EmailToken, ProvisioningTask, User

logger = logging.getLogger(__name__)

# A result can overtake the commit of its task's row by a moment; wait this long before dropping it.
_UNKNOWN_TASK_WAIT_S = 2.0


@functools.cache
def _sealing_key() -> PublicKey:
    return load_sealing_public_key(settings.SEALING_PUBLIC_KEY_FILE)


@functools.cache
def _signing_key() -> SigningKey:
    return load_signing_key(settings.SIGNING_PRIVATE_KEY_FILE)


def publish(user: User, task: Task) -> ProvisioningTask:
    """Sign `task`, record it for `user` and publish it; raises PublishError.

    Call inside transaction.atomic() with the change the task belongs to, so a
    refused publish rolls the change back with it.
    """
    task_id = uuid.uuid4()
    try:
        envelope = sign_task(_signing_key(), task, str(task_id))
    except KeyFileError as exc:
        raise PublishError(f"the signing key is not available: {exc}") from None
    record = ProvisioningTask.objects.create(task_id=task_id, user=user, operation=task.operation.value)
    broker.publish(task.operation.task_name, envelope, str(task_id))
    return record


def _sealed(username: str, password: str) -> str:
    try:
        return seal_password(_sealing_key(), username, password)
    except KeyFileError as exc:
        raise PublishError(f"the sealing key is not available: {exc}") from None


def register(username: str, email: str, first_name: str, last_name: str, password: str) -> User:
    """Create the portal user (no usable password) and publish "create user" with the sealed password."""
    with transaction.atomic():
        user = User(
            username=username,
            email=email,
            first_name=first_name,
            last_name=last_name,
            directory_state=User.DirectoryState.PENDING,
        )
        user.set_unusable_password()
        user.save()
        task = CreateUser(username, first_name, last_name, email, _sealed(username, password))
        publish(user, task)
    return user


def mark_email_verified(user: User) -> None:
    """Record the verified address and publish "enable user"; call inside the token's transaction."""
    User.objects.filter(pk=user.pk).update(email_verified_at=timezone.now())
    publish(user, EnableUser(user.username))


def set_password(user: User, password: str) -> None:
    """Publish "set password" with the new password sealed for the workers."""
    with transaction.atomic():
        publish(user, SetPassword(user.username, _sealed(user.username, password)))


def update_names(user: User, first_name: str, last_name: str) -> None:
    """Store the new names and publish "update attributes" for the directory."""
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(first_name=first_name, last_name=last_name)
        attributes = {"given_name": first_name, "surname": last_name, "display_name": f"{first_name} {last_name}"}
        publish(user, UpdateAttributes(user.username, attributes))


def expire_unverified_registrations() -> int:
    """Publish "delete user" for registrations left unverified too long; return how many.

    Expired: not staff, no verified address, and no verification mail sent within
    UNVERIFIED_RETENTION_HOURS. Their mailed tokens are dropped at once (nobody
    can verify them any more); the portal user goes when the delete succeeds
    (`record_result_event`), which frees the username and the address. Safe to
    run on several replicas at once and again after a failure: a registration
    whose delete is still queued is left alone, a failed one is tried again.
    """
    if not settings.UNVERIFIED_RETENTION_HOURS:
        return 0
    cutoff = timezone.now() - timedelta(hours=settings.UNVERIFIED_RETENTION_HOURS)
    recent_mail = EmailToken.objects.filter(
        user=OuterRef("pk"), purpose=EmailToken.Purpose.VERIFY_EMAIL, created_at__gte=cutoff
    )
    delete_queued = ProvisioningTask.objects.filter(
        user=OuterRef("pk"), operation=Operation.DELETE_USER.value, state=ProvisioningTask.State.QUEUED
    )
    expired = User.objects.filter(is_staff=False, email_verified_at=None, date_joined__lt=cutoff).exclude(
        Exists(recent_mail) | Exists(delete_queued)
    )
    count = 0
    for user in expired.iterator():
        with transaction.atomic():
            EmailToken.objects.filter(user=user, purpose=EmailToken.Purpose.VERIFY_EMAIL).delete()
            publish(user, DeleteUser(user.username))
        count += 1
    if count:
        logger.info("expired %d unverified registrations (older than %d h)", count, settings.UNVERIFIED_RETENTION_HOURS)
    return count


# --- results -------------------------------------------------------------------------------


def _find_task(task_id: str) -> ProvisioningTask | None:
    try:
        uuid.UUID(task_id)
    except ValueError:
        return None
    deadline = time.monotonic() + _UNKNOWN_TASK_WAIT_S
    while True:
        task = ProvisioningTask.objects.select_related("user").filter(task_id=task_id).first()
        if task is not None or time.monotonic() >= deadline:
            return task
        time.sleep(0.2)


_STATE_AFTER_SUCCESS = {
    Operation.CREATE_USER: User.DirectoryState.CREATED,
    Operation.ENABLE_USER: User.DirectoryState.ENABLED,
    Operation.DISABLE_USER: User.DirectoryState.CREATED,
    Operation.DELETE_USER: User.DirectoryState.NONE,
}


def _directory_state(current: str, operation: Operation, outcome: Outcome) -> str:
    if outcome is Outcome.SUCCEEDED:
        new = _STATE_AFTER_SUCCESS.get(operation, current)
        # A late "created" must not undo "enabled" (results of two workers can cross).
        if operation is Operation.CREATE_USER and current == User.DirectoryState.ENABLED:
            return current
        return new
    if operation in (Operation.CREATE_USER, Operation.ENABLE_USER) and current != User.DirectoryState.ENABLED:
        return User.DirectoryState.FAILED
    return current


def _expired_registration_deleted(task: ProvisioningTask, outcome: Outcome) -> bool:
    """The directory account of an unverified registration is gone: the portal user goes too."""
    user = task.user
    return (
        outcome is Outcome.SUCCEEDED
        and task.operation == Operation.DELETE_USER.value
        and not user.is_staff
        and user.email_verified_at is None
    )


def record_result_event(event: ResultEvent) -> bool:
    """Record a worker's result for one of our tasks; returns False when it was ignored.

    Idempotent: the same event delivered twice changes nothing the second time.
    """
    task = _find_task(event.task_id)
    if task is None:
        logger.warning("ignoring a result for unknown task %s", event.task_id)
        return False
    if event.operation != task.operation or event.username != task.user.username:
        logger.warning("ignoring a result for task %s that names another operation or user", event.task_id)
        return False
    finished_at = datetime.fromtimestamp(event.finished_at, UTC) if event.finished_at else timezone.now()
    with transaction.atomic():
        task = ProvisioningTask.objects.select_for_update().select_related("user").get(pk=task.pk)
        if task.finished_at is not None and task.finished_at >= finished_at:
            return False
        task.state = (
            ProvisioningTask.State.DONE if event.outcome is Outcome.SUCCEEDED else ProvisioningTask.State.FAILED
        )
        task.reason = event.reason
        task.worker = event.worker
        task.finished_at = finished_at
        task.save(update_fields=["state", "reason", "worker", "finished_at"])
        user = task.user
        new_state = _directory_state(user.directory_state, Operation(task.operation), event.outcome)
        if new_state != user.directory_state:
            User.objects.filter(pk=user.pk).update(directory_state=new_state)
        if _expired_registration_deleted(task, event.outcome):
            user.delete()  # with its tasks and tokens: the username and the address are free again
    logger.info("task %s (%s for %s): %s", event.task_id, event.operation, event.username, event.outcome.value)
    return True


# --- status ----------------------------------------------------------------------------------


def account_status(user: User) -> dict:
    """What the status page shows: the overall state, a sentence, and the recent tasks."""
    user.refresh_from_db(fields=["email_verified_at", "directory_state"])
    # The ten newest tasks, oldest first (the order they happened in).
    tasks = list(reversed(user.provisioning_tasks.all()[:10]))
    if user.directory_state == User.DirectoryState.FAILED:
        failed = next((t for t in reversed(tasks) if t.state == ProvisioningTask.State.FAILED), None)
        state = "failed"
        message = "Setting up your account failed" + (f": {failed.reason}" if failed and failed.reason else ".")
    elif not user.is_email_verified:
        state = "waiting_for_verification"
        message = f"Confirm your e-mail address: follow the link in the mail we sent to {user.email}, or type its code."
    elif user.directory_state == User.DirectoryState.ENABLED:
        state = "ready"
        message = f"Your account is ready. Sign in as {user.username}@{settings.REALM}."
    else:
        state = "in_progress"
        message = "Your account is being set up. This page updates by itself."
    return {
        "username": user.username,
        "realm": settings.REALM,
        "email_verified": user.is_email_verified,
        "state": state,
        "message": message,
        "tasks": [
            {
                "operation": t.operation,
                "label": t.label,
                "state": t.state,
                "reason": t.reason,
                "created_at": t.created_at.isoformat(),
                "finished_at": t.finished_at.isoformat() if t.finished_at else None,
            }
            for t in tasks
        ],
    }
