"""The mails the portal sends, through Django's e-mail framework (the backend is chosen in settings)."""

from __future__ import annotations

import logging
import smtplib

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
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
        "organization_name": settings.ORGANIZATION_NAME,
        "realm": settings.REALM,
    }
    subject = render_to_string(f"{template}_subject.txt", context).strip()
    message = EmailMultiAlternatives(subject, render_to_string(f"{template}.txt", context), to=[user.email])
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        logger.error("sending the %s mail to user %s failed: %s", issued.record.purpose, user.pk, type(exc).__name__)
        return False
    return True
