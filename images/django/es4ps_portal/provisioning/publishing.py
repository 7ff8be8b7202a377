"""Directory changes for an account: each one signed, its password sealed, written with the change.

Every change that needs the directory writes its task to the outbox (the
`ProvisioningTask` row with its signed envelope) in the same database
transaction as the change itself: both are kept or neither. The consumer's
relay (`outbox`) hands the tasks to the broker afterwards, so a broker that
is away delays provisioning instead of refusing the change. Every task names
the account's registration (its id and address), which the directory account
carries, so a task can only ever act on the account its registration created.

Every change also appends its audit record (es4ps_portal.audit) in the same
transaction: who asked, from where, which task. The task's result is recorded
when the worker reports it (`results`).
"""

from __future__ import annotations

import functools
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from es4ps_contract.keys import KeyFileError, load_sealing_public_key, load_signing_key
from es4ps_contract.sealing import seal_password
from es4ps_contract.signing import sign_task
from es4ps_contract.tasks import (
    ApplyPolicy,
    CreateUser,
    DeleteUser,
    DisableUser,
    EnableUser,
    Operation,
    SetPassword,
    Task,
    UpdateAttributes,
)
from nacl.public import PublicKey
from nacl.signing import SigningKey

from es4ps_portal.accounts.models import User
from es4ps_portal.audit.models import AuditRecord
from es4ps_portal.audit.records import Actor, record
from es4ps_portal.broker import PublishError
from es4ps_portal.metrics import TASKS_QUEUED

from .models import ProvisioningTask
from .policies import placement

Action = AuditRecord.Action


class NotProvisioned(PublishError):
    """The account is not (or no longer) in a state where this change may be sent to the directory."""


@functools.cache
def _sealing_key() -> PublicKey:
    return load_sealing_public_key(settings.SEALING_PUBLIC_KEY_FILE)


@functools.cache
def _signing_key() -> SigningKey:
    return load_signing_key(settings.SIGNING_PRIVATE_KEY_FILE)


def binding(user: User) -> dict[str, str]:
    """The registration fields every task of `user` carries."""
    return {"registration": str(user.registration_id), "email": user.email}


def publish(user: User, task: Task, action: str, actor: Actor) -> ProvisioningTask:
    """Sign `task` and write it to the outbox for `user` with its audit record; the relay publishes it once committed.

    Call inside transaction.atomic() with the change the task belongs to, so
    the change, its task and its record are committed together. Raises
    PublishError only when the task cannot be signed (a key file is missing):
    the broker is not asked here.
    """
    task_id = uuid.uuid4()
    try:
        envelope = sign_task(_signing_key(), task, str(task_id))
    except KeyFileError as exc:
        raise PublishError(f"the signing key is not available: {exc}") from None
    operation = task.operation.value
    provisioning_task = ProvisioningTask.objects.create(
        task_id=task_id, user=user, operation=operation, envelope=envelope
    )
    record(
        action,
        actor,
        subject=user,
        outcome=AuditRecord.Outcome.REQUESTED,
        task_id=task_id,
        detail=str(provisioning_task.label),
    )
    transaction.on_commit(TASKS_QUEUED.labels(operation).inc)
    return provisioning_task


def _sealed(username: str, password: str) -> str:
    try:
        return seal_password(_sealing_key(), username, password)
    except KeyFileError as exc:
        raise PublishError(f"the sealing key is not available: {exc}") from None


def locked(user: User) -> User:
    """The user's row, locked until the transaction ends (two staff members acting at once see each other)."""
    return User.objects.select_for_update().get(pk=user.pk)


def _placed(user: User, ou: str, groups: tuple[str, ...], unix: bool) -> None:
    """Remember what the account was given (what "move to its policy" compares with)."""
    user.directory_ou, user.directory_groups, user.directory_unix = ou, list(groups), unix
    user.save(update_fields=["directory_ou", "directory_groups", "directory_unix"])


# --- what people do -------------------------------------------------------------------------------


def register(
    username: str, email: str, first_name: str, last_name: str, password: str, *, actor: Actor, language: str = ""
) -> User:
    """Create the portal user (no usable password) and publish "create user" with the sealed password,
    with what the address's policy gives the account."""
    where = placement(username, email)
    with transaction.atomic():
        user = User(
            username=username,
            email=email,
            first_name=first_name,
            last_name=last_name,
            language=language,
            directory_state=User.DirectoryState.PENDING,
        )
        user.set_unusable_password()
        user.save()
        _placed(user, where.ou, where.groups, where.unix is not None)
        sealed = _sealed(username, password)
        task = CreateUser(
            username,
            given_name=first_name,
            surname=last_name,
            sealed_password=sealed,
            ou=where.ou,
            groups=where.groups,
            unix=where.unix,
            **binding(user),
        )
        publish(user, task, Action.REGISTER, actor)
    return user


def enable_registration(user: User, *, actor: Actor, action: str) -> ProvisioningTask:
    """Publish "enable user" for a registration whose address is confirmed (and approved, where staff approve);
    the approval workflow (es4ps_portal.web.approval) decides when."""
    return publish(user, EnableUser(user.username, **binding(user)), action, actor)


def change_password(user: User, password: str, *, actor: Actor, reset: bool = False) -> None:
    """Publish "set password" with the new password sealed for the workers; other sessions of the user end.

    Only for an enabled account: the directory account of a registration whose
    create failed may be someone else's. `reset`: through a mailed link.
    """
    with transaction.atomic():
        current = locked(user)
        if current.directory_state != User.DirectoryState.ENABLED:
            raise NotProvisioned("the account is not enabled in the directory")
        changed_at = timezone.now()
        User.objects.filter(pk=user.pk).update(credentials_changed_at=changed_at)
        user.credentials_changed_at = changed_at
        task = SetPassword(user.username, sealed_password=_sealed(user.username, password), **binding(user))
        publish(user, task, Action.RESET_PASSWORD if reset else Action.CHANGE_PASSWORD, actor)


def update_names(user: User, first_name: str, last_name: str, *, actor: Actor) -> None:
    """Store the new names and publish "update attributes" for the directory."""
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(first_name=first_name, last_name=last_name)
        attributes = {"given_name": first_name, "surname": last_name, "display_name": f"{first_name} {last_name}"}
        task = UpdateAttributes(user.username, attributes=attributes, **binding(user))
        publish(user, task, Action.CHANGE_PROFILE, actor)


def delete_account(user: User, *, actor: Actor, action: str = Action.DELETE_ACCOUNT) -> ProvisioningTask:
    """Publish "delete user"; the portal forgets the person when the worker reports it done (`results`)."""
    return publish(user, DeleteUser(user.username, **binding(user)), action, actor)


# --- what staff do (es4ps_portal.web.staff checks who may) ----------------------------------------------------

IN_DIRECTORY = (User.DirectoryState.CREATED, User.DirectoryState.ENABLED, User.DirectoryState.DISABLED)


def disable_account(user: User, *, actor: Actor) -> ProvisioningTask:
    with transaction.atomic():
        current = locked(user)
        if current.directory_state != User.DirectoryState.ENABLED:
            raise NotProvisioned(_("only an enabled account can be disabled"))
        return publish(current, DisableUser(current.username, **binding(current)), Action.DISABLE_ACCOUNT, actor)


def enable_account(user: User, *, actor: Actor) -> ProvisioningTask:
    """Enable an account staff disabled, or try again one whose enabling failed."""
    with transaction.atomic():
        current = locked(user)
        if current.directory_state not in (User.DirectoryState.DISABLED, User.DirectoryState.FAILED):
            raise NotProvisioned(_("only a disabled account, or one whose setup failed, can be enabled here"))
        if not current.is_email_verified or current.approval in (User.Approval.WAITING, User.Approval.REFUSED):
            raise NotProvisioned(_("the address is not confirmed, or the registration is not approved"))
        return publish(current, EnableUser(current.username, **binding(current)), Action.ENABLE_ACCOUNT, actor)


def staff_delete_account(user: User, *, actor: Actor) -> ProvisioningTask:
    with transaction.atomic():
        current = locked(user)
        if current.is_staff or not current.directory_state:
            raise NotProvisioned(_("only a person's directory account can be deleted here"))
        if current.provisioning_tasks.filter(
            operation=Operation.DELETE_USER.value, state=ProvisioningTask.State.QUEUED
        ).exists():
            raise NotProvisioned(_("its deletion is under way"))
        return delete_account(current, actor=actor)


def apply_policy(user: User, *, actor: Actor) -> ProvisioningTask:
    """Move the account to the OU and groups its address's policy gives now.

    Unix attributes are given to an account that has none; existing ones never change.
    """
    with transaction.atomic():
        current = locked(user)
        if current.is_staff or current.directory_state not in IN_DIRECTORY:
            raise NotProvisioned(_("the account is not in the directory"))
        where = placement(current.username, current.email)
        unix = where.unix if where.unix and not current.directory_unix else None
        if (where.ou, list(where.groups)) == (current.directory_ou, current.directory_groups) and unix is None:
            raise NotProvisioned(_("the account is in its policy's OU and groups already"))
        _placed(current, where.ou, where.groups, current.directory_unix or unix is not None)
        task = ApplyPolicy(current.username, ou=where.ou, groups=where.groups, unix=unix, **binding(current))
        return publish(current, task, Action.APPLY_POLICY, actor)
