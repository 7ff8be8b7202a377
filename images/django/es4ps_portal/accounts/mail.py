"""The mails the portal sends, through Django's e-mail framework (the backend is chosen in settings).

Each mail is three templates under accounts/mail/: `<name>_subject.txt`,
`<name>.txt` and `<name>.html`.
"""

from __future__ import annotations

import logging
import smtplib

from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.mail import EmailMultiAlternatives
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode

from .models import EmailToken, User
from .tokens import IssuedToken

logger = logging.getLogger(__name__)

_TEMPLATES = {
    EmailToken.Purpose.VERIFY_EMAIL: ("accounts:verify-link", "accounts/mail/verify"),
    EmailToken.Purpose.RESET_PASSWORD: ("accounts:reset-confirm", "accounts/mail/reset"),
}


def send_token_mail(user: User, issued: IssuedToken) -> bool:
    """Mail the link (and code) of `issued` to the user; returns False when the mail server refused it.

    A failed mail loses nothing: the person can ask for a new one.
    """
    url_name, template = _TEMPLATES[EmailToken.Purpose(issued.record.purpose)]
    context = {
        "user": user,
        # The token rides in the query string, which the access log leaves out.
        "link": f"{settings.PORTAL_BASE_URL}{reverse(url_name)}?{urlencode({'token': issued.token})}",
        "code": issued.code,
        "hours": settings.TOKEN_TTL_HOURS,
        "retention_days": round(settings.UNVERIFIED_RETENTION_HOURS / 24, 1),
    }
    return _send(template, [user.email], context, f"the {issued.record.purpose} mail to user {user.pk}")


def _send(template: str, recipients: list[str], context: dict, what: str) -> bool:
    """Render and send one mail; returns False (and logs why, without the address) when the server refused it."""
    context = {"organization_name": settings.ORGANIZATION_NAME, "realm": settings.REALM, **context}
    subject = render_to_string(f"{template}_subject.txt", context).strip()
    message = EmailMultiAlternatives(subject, render_to_string(f"{template}.txt", context), to=recipients)
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        logger.error("sending %s failed: %s", what, type(exc).__name__)
        return False
    return True


def approvers() -> list[str]:
    """The addresses of active staff who may approve registrations (the permission, directly or by a group)."""
    permission = Permission.objects.filter(codename="approve_registration", content_type__app_label="accounts")
    may_approve = Q(is_superuser=True) | Q(user_permissions__in=permission) | Q(groups__permissions__in=permission)
    staff = User.objects.filter(may_approve, is_active=True, is_staff=True).exclude(email="")
    return sorted(set(staff.values_list("email", flat=True)))


def send_approval_request(user: User) -> bool:
    """Tell the approvers that `user`'s confirmed registration waits for them."""
    recipients = approvers()
    if not recipients:
        logger.warning("registration %s waits for approval, but no active staff member may approve it", user.pk)
        return False
    link = f"{settings.PORTAL_BASE_URL}{reverse('admin:accounts_user_change', args=[user.pk])}"
    return _send("accounts/mail/approval_request", recipients, {"user": user, "link": link}, "an approval request")


def send_approval_decision(user: User, approved: bool) -> bool:
    """Tell the person whether staff approved their registration."""
    template = "accounts/mail/approved" if approved else "accounts/mail/refused"
    link = f"{settings.PORTAL_BASE_URL}{reverse('accounts:login')}"
    return _send(template, [user.email], {"user": user, "link": link}, f"the approval decision to user {user.pk}")
