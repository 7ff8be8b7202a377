"""The mails the portal sends, through Django's e-mail framework (the backend is chosen in settings).

Each mail is three templates (subject, text, HTML), here under accounts/mail/
(the approval workflow's under web/mail/), written in the person's language: the request's when a person's action sends
it, else the language the person last used the portal in (ES4PS_DEFAULT_LANGUAGE
when unknown). A mail that cannot be sent is logged and lost, never raised: the
person can ask again, and a notice is not worth failing what caused it.

Links point at the web layer's pages by URL name (`web:...`), the only thing
this module knows of it: names, like AUTH_USER_MODEL, not imports.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.http import urlencode

from .models import EmailToken, User
from .tokens import IssuedToken

logger = logging.getLogger(__name__)

_TEMPLATES = {
    EmailToken.Purpose.VERIFY_EMAIL: ("web:verify-link", "accounts/mail/verify"),
    EmailToken.Purpose.RESET_PASSWORD: ("web:reset-confirm", "accounts/mail/reset"),
}


def page_url(name: str, *args) -> str:
    """The public address of the portal's page `name` (a URL name); never built from a request's Host header."""
    return f"{settings.PORTAL_BASE_URL}{reverse(name, args=args)}"


def _server_configured() -> bool:
    """False when mails would go to SMTP with no server to go to (spec.portal.smtp unset): they are not sent."""
    return bool(settings.EMAIL_HOST) or not settings.EMAIL_BACKEND.endswith(".smtp.EmailBackend")


def send(
    user: User,
    template: str,
    context: dict,
    what: str,
    language: str | None = None,
    recipients: list[str] | None = None,
) -> bool:
    """Render `template` (subject, text, HTML) about `user` and send it (to `user`, or to `recipients`);
    False when the mail server refused it. `what` names the mail in the log."""
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
    if not _server_configured():
        logger.warning(
            "no mail server is configured (spec.portal.smtp): the %s mail to user %s is not sent", what, user.pk
        )
        return False
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
        "link": f"{page_url(url_name)}?{urlencode({'token': issued.token})}",
        "code": issued.code,
        "hours": settings.TOKEN_TTL_HOURS,
        "retention_days": round(settings.UNVERIFIED_RETENTION_HOURS / 24, 1),
    }
    return send(user, template, context, issued.record.purpose, language=translation.get_language())


def send_password_changed(user: User, changed_at: datetime) -> bool:
    """Tell the person their password was changed or reset (after the directory took it)."""
    context = {"changed_at": changed_at, "reset_link": page_url("web:password-reset")}
    return send(user, "accounts/mail/password_changed", context, "password changed")


def send_password_expiry(user: User, expires_at: datetime, days_left: int) -> bool:
    """Remind the person their password expires in `days_left` days (0: it has expired)."""
    context = {
        "expires_at": expires_at,
        "days_left": days_left,
        "change_link": page_url("web:password-change"),
        "reset_link": page_url("web:password-reset"),
    }
    return send(user, "accounts/mail/password_expiry", context, "password expiry")
