"""Directory changes for an account: each one signed, its password sealed, published with the change.

Every change that needs the directory is written to the database and
published in one transaction: if the broker does not confirm the task, the
change rolls back and the person can simply try again. Every task names the
account's registration (its id and address), which the directory account
carries, so a task can only ever act on the account its registration created.
"""

from __future__ import annotations

import functools
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from es4ps_contract.keys import KeyFileError, load_sealing_public_key, load_signing_key
from es4ps_contract.sealing import seal_password
from es4ps_contract.signing import sign_task
from es4ps_contract.tasks import CreateUser, DeleteUser, EnableUser, SetPassword, Task, UpdateAttributes
from nacl.public import PublicKey
from nacl.signing import SigningKey

from es4ps_portal import broker
from es4ps_portal.accounts.models import User
from es4ps_portal.broker import PublishError

from .models import ProvisioningTask


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


def register(username: str, email: str, first_name: str, last_name: str, password: str, language: str = "") -> User:
    """Create the portal user (no usable password) and publish "create user" with the sealed password."""
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
        sealed = _sealed(username, password)
        task = CreateUser(username, given_name=first_name, surname=last_name, sealed_password=sealed, **binding(user))
        publish(user, task)
    return user


def mark_email_verified(user: User) -> bool:
    """Record the verified address and publish "enable user"; call inside the token's transaction.

    Returns whether "enable user" was published: never for a registration
    whose account could not be created (the name may belong to someone else).
    """
    User.objects.filter(pk=user.pk).update(email_verified_at=timezone.now())
    if user.directory_state not in (User.DirectoryState.PENDING, User.DirectoryState.CREATED):
        return False
    publish(user, EnableUser(user.username, **binding(user)))
    return True


def change_password(user: User, password: str) -> None:
    """Publish "set password" with the new password sealed for the workers; other sessions of the user end.

    Only for an enabled account: the directory account of a registration whose
    create failed may be someone else's.
    """
    with transaction.atomic():
        current = User.objects.select_for_update().get(pk=user.pk)
        if current.directory_state != User.DirectoryState.ENABLED:
            raise NotProvisioned("the account is not enabled in the directory")
        changed_at = timezone.now()
        User.objects.filter(pk=user.pk).update(credentials_changed_at=changed_at)
        user.credentials_changed_at = changed_at
        publish(user, SetPassword(user.username, sealed_password=_sealed(user.username, password), **binding(user)))


def update_names(user: User, first_name: str, last_name: str) -> None:
    """Store the new names and publish "update attributes" for the directory."""
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(first_name=first_name, last_name=last_name)
        attributes = {"given_name": first_name, "surname": last_name, "display_name": f"{first_name} {last_name}"}
        publish(user, UpdateAttributes(user.username, attributes=attributes, **binding(user)))


def delete_account(user: User) -> ProvisioningTask:
    """Publish "delete user"; the portal forgets the person when the worker reports it done (`results`)."""
    return publish(user, DeleteUser(user.username, **binding(user)))
