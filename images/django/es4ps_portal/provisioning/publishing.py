"""Directory changes for an account: each one validated, its password sealed, written with the change.

Every change that needs the directory writes its task to the outbox (the
`ProvisioningTask` row with the task's validated fields) in the same database
transaction as the change itself: both are kept or neither. The consumer's
relay (`outbox`) signs the tasks and hands them to the broker afterwards, so a
broker that is away delays provisioning instead of refusing the change. Every
task names the account's registration (its id and address), which the
directory account carries, so a task can only ever act on the account its
registration created.

Nothing reaches the directory before the address is proven: a registration's
"create user" (its password sealed in the request, the only place it is in
clear) is held in the outbox until the person confirms the address
(`release_create`); an unconfirmed registration that expires or is withdrawn
is dropped with its held create (`drop_registration`), so it never takes a
RID, a uid, a name or a group in the directory. The portal reserves its name
and address meanwhile; a name the directory already holds is refused by the
create, at confirmation, and the status page says what to do.

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
from es4ps_contract.keys import KeyFileError, load_sealing_public_key
from es4ps_contract.sealing import seal_password
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
    validated,
)
from nacl.public import PublicKey

from es4ps_portal.accounts.models import User
from es4ps_portal.audit.models import AuditRecord
from es4ps_portal.audit.records import Actor, record
from es4ps_portal.broker import PublishError
from es4ps_portal.metrics import TASKS_QUEUED

from .models import Computer, ProvisioningTask
from .policies import placement

Action = AuditRecord.Action


class NotProvisioned(PublishError):
    """The account is not (or no longer) in a state where this change may be sent to the directory."""


@functools.cache
def _sealing_key() -> PublicKey:
    return load_sealing_public_key(settings.SEALING_PUBLIC_KEY_FILE)


def binding(user: User) -> dict[str, str]:
    """The registration fields every task of `user` carries."""
    return {"registration": str(user.registration_id), "email": user.email}


def publish(
    subject: User | Computer | None, task: Task, action: str | None, actor: Actor, *, held: bool = False
) -> ProvisioningTask:
    """Validate `task` and write it to the outbox for `subject` (the account or computer it acts on; None for a
    report) with its audit record (none when `action` is None: a report changes nothing); the relay signs and
    publishes it once committed (a `held` one once it is released).

    Call inside transaction.atomic() with the change the task belongs to, so
    the change, its task and its record are committed together. The broker is
    not asked here.
    """
    task_id = uuid.uuid4()
    operation = task.operation.value
    provisioning_task = ProvisioningTask.objects.create(
        task_id=task_id,
        user=subject if isinstance(subject, User) else None,
        computer=subject if isinstance(subject, Computer) else None,
        operation=operation,
        payload=validated(task).payload(),
        held=held,
    )
    if action is not None:
        record(
            action,
            actor,
            subject=subject,
            outcome=AuditRecord.Outcome.REQUESTED,
            task_id=task_id,
            detail=str(provisioning_task.label),
        )
    transaction.on_commit(TASKS_QUEUED.labels(operation).inc)
    return provisioning_task


def seal(username: str, password: str) -> str:
    """`password` sealed for the workers (only they can open it); PublishError when the key is missing."""
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
    username: str,
    email: str,
    first_name: str,
    last_name: str,
    sealed_password: str,
    *,
    actor: Actor,
    language: str = "",
    registered_from: str = "",
    registration_id: uuid.UUID | None = None,
) -> User:
    """Create the portal user (no usable password) and hold "create user" with the password `seal`ed, with what
    the address's policy gives the account, until the address is proven (`release_create`).
    `registration_id`: the one the registering browser follows."""
    where = placement(username, email)
    with transaction.atomic():
        user = User(
            username=username,
            email=email,
            first_name=first_name,
            last_name=last_name,
            language=language,
            registered_from=registered_from,
            directory_state=User.DirectoryState.PENDING,
            **({"registration_id": registration_id} if registration_id else {}),
        )
        user.set_unusable_password()
        user.save()
        _placed(user, where.ou, where.groups, where.unix is not None)
        task = CreateUser(
            username,
            given_name=first_name,
            surname=last_name,
            sealed_password=sealed_password,
            ou=where.ou,
            groups=where.groups,
            unix=where.unix,
            **binding(user),
        )
        publish(user, task, Action.REGISTER, actor, held=True)
    return user


def release_create(user: User) -> bool:
    """The address is proven: the held "create user" goes to the relay (call in the confirmation's transaction),
    saying so (`address_proven`: only such a create may take on an account the product never bound whose
    address is this one; docs/directory.md).

    False when none was held: a registration of the previous release, whose
    account was created (disabled) when it registered.
    """
    held = list(user.provisioning_tasks.filter(held=True))
    for task in held:
        if task.operation == Operation.CREATE_USER.value and task.payload is not None:
            task.payload = {**task.payload, "address_proven": True}
        task.held = False
        task.save(update_fields=["held", "payload"])
    return bool(held)


def drop_registration(user: User, *, actor: Actor, action: str) -> bool:
    """Forget a registration whose create is still held (nothing of it is in the directory): the portal user goes
    with its tasks and tokens, freeing the name and the address. False (nothing done) once its create was released.

    The user's row is locked first, as the confirmation locks it (`lock_for_confirmation`): a registration
    confirmed at the same moment is either confirmed or dropped, never both.
    """
    with transaction.atomic():
        current = User.objects.select_for_update().filter(pk=user.pk).first()
        if current is None:
            return True  # dropped a moment ago (another replica's expiry)
        if not current.provisioning_tasks.filter(held=True).exists():
            return False
        detail = "nothing was sent to the directory"
        record(action, actor, subject=current, outcome=AuditRecord.Outcome.SUCCEEDED, detail=detail)
        current.delete()
    return True


def withdraw_failed_registration(user: User, *, actor: Actor) -> bool:
    """Forget a registration whose create the directory refused (e.g. the name is taken there): nothing of it is
    in the directory, so the person may register again with another name. False when that is not the case."""
    with transaction.atomic():
        current = User.objects.select_for_update().filter(pk=user.pk).first()
        if current is None or current.is_staff or current.directory_state != User.DirectoryState.FAILED:
            return False
        if current.imported_at is not None:
            return False  # an imported person's record: their claim is made again, never withdrawn
        creates = current.provisioning_tasks.filter(operation=Operation.CREATE_USER.value)
        if (
            not creates.filter(state=ProvisioningTask.State.FAILED).exists()
            or creates.exclude(state=ProvisioningTask.State.FAILED).exists()
        ):
            return False
        detail = "the directory refused its create; nothing of it is in the directory"
        record(
            Action.WITHDRAW_REGISTRATION, actor, subject=current, outcome=AuditRecord.Outcome.SUCCEEDED, detail=detail
        )
        current.delete()
    return True


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
        task = SetPassword(user.username, sealed_password=seal(user.username, password), **binding(user))
        publish(user, task, Action.RESET_PASSWORD if reset else Action.CHANGE_PASSWORD, actor)


def claim_imported(user: User, password: str, *, actor: Actor) -> None:
    """An imported person proved the address (through the reset mail) and chose `password`: publish the create
    the worker adopts their old account with (`address_proven`: only the account of this name whose `mail` is
    this address, in the managed OU, never bound). Until the worker applies it, the old password stays the
    account's. "Enable user" follows once the account is adopted (`results`): sent now, it could reach the
    account before the create and be refused, the account not being bound yet."""
    where = placement(user.username, user.email)
    with transaction.atomic():
        current = locked(user)
        if not current.is_claimable:
            raise NotProvisioned("the account is not waiting to be claimed")
        now = timezone.now()
        User.objects.filter(pk=user.pk).update(
            email_verified_at=now, credentials_changed_at=now, directory_state=User.DirectoryState.PENDING
        )
        user.credentials_changed_at = current.credentials_changed_at = now
        _placed(current, where.ou, where.groups, where.unix is not None)
        task = CreateUser(
            current.username,
            given_name=current.first_name,
            surname=current.last_name,
            sealed_password=seal(current.username, password),
            ou=where.ou,
            groups=where.groups,
            unix=where.unix,
            address_proven=True,
            **binding(current),
        )
        publish(current, task, Action.CLAIM_ACCOUNT, actor)


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


def staff_delete_account(user: User, *, actor: Actor) -> ProvisioningTask | None:
    """Delete the account (its registration goes when the worker reports it done); an unconfirmed registration,
    of which the directory has nothing, is forgotten at once (None), and so is an imported person's record not
    claimed yet: its directory account is not the portal's (never bound), and stays as it is."""
    if drop_registration(user, actor=actor, action=Action.DELETE_ACCOUNT):
        return None
    with transaction.atomic():
        current = locked(user)
        if current.directory_state == User.DirectoryState.UNCLAIMED and current.imported_at is not None:
            detail = "an imported record not claimed: its directory account is left as it is"
            record(Action.DELETE_ACCOUNT, actor, subject=current, outcome=AuditRecord.Outcome.SUCCEEDED, detail=detail)
            current.delete()
            return None
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
