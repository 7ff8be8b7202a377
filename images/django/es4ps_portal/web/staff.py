"""What staff do to people's accounts, one account at a time (the admin's actions run these over a selection).

Directory changes go through es4ps_portal.provisioning.publishing (approvals
through `approval`): each is a signed task whose result the account's task
list (and the audit trail) shows when the worker reports it. Mails go through
es4ps_portal.accounts.mail. Every action appends its
audit record, refused ones included. Nobody, staff included, ever sees or
types a person's password: a reset is a mail to the person, who chooses the
new password.
"""

from __future__ import annotations

from collections.abc import Callable

from django.utils.translation import gettext as _

from es4ps_portal.accounts import mail, tokens
from es4ps_portal.accounts.models import QueuedMail, User
from es4ps_portal.audit.models import AuditRecord
from es4ps_portal.audit.records import Actor, record
from es4ps_portal.broker import PublishError
from es4ps_portal.provisioning import publishing

from . import approval

Action = AuditRecord.Action
Outcome = AuditRecord.Outcome


class NotApplicable(Exception):
    """The action does not apply to this account, or failed; the message says why, for the staff member."""


def _directory(action: str, change: Callable, user: User, actor: Actor) -> None:
    try:
        change(user, actor=actor)
    except publishing.NotProvisioned as exc:
        raise NotApplicable(str(exc)) from None
    except PublishError:
        # The change rolled back with its record; the attempt itself is worth a record.
        reason = _("the broker did not take the task; nothing was changed")
        record(action, actor, subject=user, outcome=Outcome.FAILED, detail=reason)
        raise NotApplicable(reason) from None


def disable(user: User, actor: Actor) -> None:
    _directory(Action.DISABLE_ACCOUNT, publishing.disable_account, user, actor)


def enable(user: User, actor: Actor) -> None:
    _directory(Action.ENABLE_ACCOUNT, publishing.enable_account, user, actor)


def delete(user: User, actor: Actor) -> None:
    _directory(Action.DELETE_ACCOUNT, publishing.staff_delete_account, user, actor)


def approve(user: User, actor: Actor) -> None:
    _directory(Action.APPROVE_REGISTRATION, approval.approve_registration, user, actor)


def refuse(user: User, actor: Actor) -> None:
    _directory(Action.REFUSE_REGISTRATION, approval.refuse_registration, user, actor)


def apply_policy(user: User, actor: Actor) -> None:
    _directory(Action.APPLY_POLICY, publishing.apply_policy, user, actor)


def _mail(action: str, user: User, actor: Actor, kind: QueuedMail.Kind) -> None:
    """Queue the mail (the consumer's relay sends it, in the person's language) and record that it was asked."""
    if kind == QueuedMail.Kind.VERIFY and not tokens.verification_mails_left(user):
        reason = _("We sent as many mails for this registration as we can. Use the newest one.")
        record(action, actor, subject=user, outcome=Outcome.FAILED, detail=reason)
        raise NotApplicable(reason)
    mail.queue_token_mail(user, kind, language=user.language)
    record(action, actor, subject=user, detail=_("mail queued for the registered address"))


def resend_verification_mail(user: User, actor: Actor) -> None:
    """A new verification mail (the registration's limit of mails holds for staff too: it bounds code guessing)."""
    if user.is_staff or not user.directory_state:
        raise NotApplicable(_("not a person's registration"))
    if user.is_email_verified:
        raise NotApplicable(_("the address is confirmed already"))
    _mail(Action.RESEND_VERIFICATION_MAIL, user, actor, QueuedMail.Kind.VERIFY)


def send_password_reset_mail(user: User, actor: Actor) -> None:
    """A reset link to the person's registered address; the person chooses the new password. To an imported
    person waiting to claim their account, the link is their claim (docs/migration.md)."""
    enabled = user.directory_state == User.DirectoryState.ENABLED and user.is_email_verified
    if user.is_staff or not (enabled or user.is_claimable):
        raise NotApplicable(_("the account is not enabled"))
    _mail(Action.SEND_PASSWORD_RESET_MAIL, user, actor, QueuedMail.Kind.RESET)
