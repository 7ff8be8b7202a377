"""A registration from its confirmed address to an enabled account, and the mails that go with it.

Confirming the address releases the registration's held "create user" (the
directory sees nothing of a registration before that). With automatic
approval, it also publishes "enable user". With
manual approval (settings.REGISTRATION_APPROVAL), a confirmed registration
waits: staff with the approve_registration permission are mailed, and their
decision (`approve_registration`, `refuse_registration`, run by `staff`)
enables the account or deletes it, and is mailed to the person. The tasks go
through es4ps_portal.provisioning.publishing and the mails into the mail
queue, both in the decision's transaction.
"""

from __future__ import annotations

import enum
import logging

from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from es4ps_portal.accounts import mail
from es4ps_portal.accounts.models import User
from es4ps_portal.audit.models import AuditRecord
from es4ps_portal.audit.records import Actor, record
from es4ps_portal.provisioning import publishing
from es4ps_portal.provisioning.models import ProvisioningTask
from es4ps_portal.provisioning.publishing import NotProvisioned

logger = logging.getLogger(__name__)
Action = AuditRecord.Action


class Verified(enum.StrEnum):
    """What confirming an address led to."""

    ENABLING = "enabling"  # "enable user" is published
    WAITING_FOR_APPROVAL = "waiting_for_approval"  # manual approval: staff decide first
    CONFIRMED = "confirmed"  # nothing to enable (the account could not be created)


def mark_email_verified(user: User, *, actor: Actor) -> Verified:
    """Record the verified address, release the held "create user" and publish "enable user" (or, with manual
    approval, ask staff first); call inside the token's transaction.

    The user's row is locked first: expiry, which drops a registration whose
    create is held, waits for the confirmation or is waited for. Never enables
    a registration whose account could not be created (a registration of the
    previous release whose create failed: the name may belong to someone else).
    """
    user = publishing.locked(user)
    User.objects.filter(pk=user.pk).update(email_verified_at=timezone.now())
    publishing.release_create(user)
    if user.directory_state not in (User.DirectoryState.PENDING, User.DirectoryState.CREATED):
        record(Action.VERIFY_EMAIL, actor, subject=user, detail="the account was not created: nothing to enable")
        return Verified.CONFIRMED
    if settings.REGISTRATION_APPROVAL == "Manual" and user.approval != User.Approval.APPROVED:
        User.objects.filter(pk=user.pk).update(approval=User.Approval.WAITING)
        record(Action.VERIFY_EMAIL, actor, subject=user, detail="waiting for approval")
        send_approval_request(user)
        return Verified.WAITING_FOR_APPROVAL
    publishing.enable_registration(user, actor=actor, action=Action.VERIFY_EMAIL)
    return Verified.ENABLING


def _waiting(user: User, decision: str) -> User:
    """The registration's row, locked, with staff's decision taken; raises NotProvisioned if it does not wait."""
    current = publishing.locked(user)
    if current.approval != User.Approval.WAITING:
        raise NotProvisioned(_("the registration does not wait for approval"))
    current.approval = decision
    current.save(update_fields=["approval"])
    send_approval_decision(current, approved=decision == User.Approval.APPROVED)
    return current


def approve_registration(user: User, *, actor: Actor) -> ProvisioningTask | None:
    """Approve a registration that waits: its account is enabled (if it was created), the person is mailed."""
    with transaction.atomic():
        current = _waiting(user, User.Approval.APPROVED)
        if current.directory_state not in (User.DirectoryState.PENDING, User.DirectoryState.CREATED):
            record(Action.APPROVE_REGISTRATION, actor, subject=current, detail="the account was not created")
            return None
        return publishing.enable_registration(current, actor=actor, action=Action.APPROVE_REGISTRATION)


def refuse_registration(user: User, *, actor: Actor) -> ProvisioningTask:
    """Refuse a registration that waits: its account is deleted, then the registration (provisioning.results)."""
    with transaction.atomic():
        current = _waiting(user, User.Approval.REFUSED)
        return publishing.delete_account(current, actor=actor, action=Action.REFUSE_REGISTRATION)


def approvers() -> list[str]:
    """The addresses of active staff who may approve registrations (the permission, directly or by a group)."""
    permission = Permission.objects.filter(codename="approve_registration", content_type__app_label="accounts")
    may_approve = Q(is_superuser=True) | Q(user_permissions__in=permission) | Q(groups__permissions__in=permission)
    staff = User.objects.filter(may_approve, is_active=True, is_staff=True).exclude(email="")
    return sorted(set(staff.values_list("email", flat=True)))


def send_approval_request(user: User) -> None:
    """Queue, for the approvers (in the portal's default language), that `user`'s confirmed registration waits."""
    recipients = approvers()
    if not recipients:
        logger.warning("registration %s waits for approval, but no active staff member may approve it", user.pk)
        return
    # The admin's own address (spec.portal.admin.host), where it has one.
    link = f"{settings.ADMIN_BASE_URL}{reverse('admin:accounts_user_change', args=[user.pk])}"
    mail.queue_notice(
        "web/mail/approval_request", user=user, recipients=tuple(recipients), context={"link": link},
        language=settings.LANGUAGE_CODE,
    )  # fmt: skip


def send_approval_decision(user: User, approved: bool) -> None:
    """Queue, for the person, whether staff approved their registration."""
    template = "web/mail/approved" if approved else "web/mail/refused"
    mail.queue_notice(template, user=user, context={"link": mail.page_url("web:login")}, language=user.language)
