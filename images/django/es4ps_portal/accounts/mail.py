"""The mails the portal sends, through Django's e-mail framework (the backend is chosen in settings).

Each mail is three templates (subject, text, HTML) under accounts/mail/,
written in the person's language: the request's when a person's action sends
it, else the language the person last used the portal in (ES4PS_DEFAULT_LANGUAGE
when unknown). A mail that cannot be sent is logged and lost, never raised: the
person can ask again, and a notice is not worth failing what caused it.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.mail import EmailMultiAlternatives
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.http import urlencode

from .models import EmailToken, User
from .tokens import IssuedToken

logger = logging.getLogger(__name__)

_TEMPLATES = {
    EmailToken.Purpose.VERIFY_EMAIL: ("accounts:verify-link", "accounts/mail/verify"),
    EmailToken.Purpose.RESET_PASSWORD: ("accounts:reset-confirm", "accounts/mail/reset"),
}


def _url(name: str) -> str:
    # Links are built from the portal's public address, never from a request's Host header.
    return f"{settings.PORTAL_BASE_URL}{reverse(name)}"


def _send(
    user: User,
    template: str,
    context: dict,
    what: str,
    language: str | None = None,
    recipients: list[str] | None = None,
) -> bool:
    """Render `template` (subject, text, HTML) about `user` and send it (to `user`, or to `recipients`);
    False when the mail server refused it."""
    context = {
        "user": user,
        "organization_name": settings.ORGANIZATION_NAME,
        "realm": settings.REALM,
        **context,
    }
    with translation.override(language or user.language or settings.LANGUAGE_CODE):
        subject = render_to_string(f"{template}_subject.txt", context).strip()
        message = EmailMultiAlternatives(
            subject, render_to_string(f"{template}.txt", context), to=recipients or [user.email]
        )
        message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        logger.error("sending the %s mail to user %s failed: %s", what, user.pk, type(exc).__name__)
        return False
    return True


def send_token_mail(user: User, issued: IssuedToken) -> bool:
    """Mail the link (and code) of `issued` to the user, in the language of the request that asked for it."""
    url_name, template = _TEMPLATES[EmailToken.Purpose(issued.record.purpose)]
    context = {
        # The token rides in the query string, which the access log leaves out.
        "link": f"{_url(url_name)}?{urlencode({'token': issued.token})}",
        "code": issued.code,
        "hours": settings.TOKEN_TTL_HOURS,
        "retention_days": round(settings.UNVERIFIED_RETENTION_HOURS / 24, 1),
    }
    return _send(user, template, context, issued.record.purpose, language=translation.get_language())


def send_password_changed(user: User, changed_at: datetime) -> bool:
    """Tell the person their password was changed or reset (after the directory took it)."""
    context = {"changed_at": changed_at, "reset_link": _url("accounts:password-reset")}
    return _send(user, "accounts/mail/password_changed", context, "password changed")


def send_password_expiry(user: User, expires_at: datetime, days_left: int) -> bool:
    """Remind the person their password expires in `days_left` days (0: it has expired)."""
    context = {
        "expires_at": expires_at,
        "days_left": days_left,
        "change_link": _url("accounts:password-change"),
        "reset_link": _url("accounts:password-reset"),
    }
    return _send(user, "accounts/mail/password_expiry", context, "password expiry")


def approvers() -> list[str]:
    """The addresses of active staff who may approve registrations (the permission, directly or by a group)."""
    permission = Permission.objects.filter(codename="approve_registration", content_type__app_label="accounts")
    may_approve = Q(is_superuser=True) | Q(user_permissions__in=permission) | Q(groups__permissions__in=permission)
    staff = User.objects.filter(may_approve, is_active=True, is_staff=True).exclude(email="")
    return sorted(set(staff.values_list("email", flat=True)))


def send_approval_request(user: User) -> bool:
    """Tell the approvers (in the portal's default language) that `user`'s confirmed registration waits for them."""
    recipients = approvers()
    if not recipients:
        logger.warning("registration %s waits for approval, but no active staff member may approve it", user.pk)
        return False
    context = {"link": f"{settings.PORTAL_BASE_URL}{reverse('admin:accounts_user_change', args=[user.pk])}"}
    return _send(
        user, "accounts/mail/approval_request", context, "approval request",
        language=settings.LANGUAGE_CODE, recipients=recipients,
    )  # fmt: skip


def send_approval_decision(user: User, approved: bool) -> bool:
    """Tell the person whether staff approved their registration."""
    template = "accounts/mail/approved" if approved else "accounts/mail/refused"
    return _send(user, template, {"link": _url("accounts:login")}, "approval decision")
