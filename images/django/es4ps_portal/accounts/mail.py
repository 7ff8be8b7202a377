"""The mails the portal sends, through Django's e-mail framework, and the queue requests put them in.

A request never talks to the mail server: it writes a QueuedMail row
(`queue_token_mail`, `queue_reset_by_address`, `queue_notice`) and the
consumer's relay (`mail_outbox`) builds and sends it, so a request's answer
and its time do not depend on the mail server, or on whether an address has
an account. The consumer's own mails (a password changed, expiry reminders)
are sent directly (`send`): they are off the request path already.

Each mail is three templates (subject, text, HTML), here under accounts/mail/
(the web layer's under web/mail/), written in the person's language: the
request's when a person's action sends it, else the language the person last
used the portal in (ES4PS_DEFAULT_LANGUAGE when unknown). Mails carry no text
a registrant typed but, to the owner of a confirmed address, the username
they chose: names can hold a sentence or a link, and a mail from the
organisation must not carry someone else's. A mail that cannot be sent is
logged (its kind and user, never its content) and retried by the relay;
without a mail server none is sent.

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

from . import tokens
from .models import EmailToken, QueuedMail, User

logger = logging.getLogger(__name__)

_TOKEN_MAILS = {
    EmailToken.Purpose.VERIFY_EMAIL: ("web:verify-link", "accounts/mail/verify"),
    EmailToken.Purpose.RESET_PASSWORD: ("web:reset-confirm", "accounts/mail/reset"),
}
_PURPOSE_OF = {
    QueuedMail.Kind.VERIFY: EmailToken.Purpose.VERIFY_EMAIL,
    QueuedMail.Kind.RESET: EmailToken.Purpose.RESET_PASSWORD,
    QueuedMail.Kind.RESET_BY_ADDRESS: EmailToken.Purpose.RESET_PASSWORD,
}


def page_url(name: str, *args) -> str:
    """The public address of the portal's page `name` (a URL name); never built from a request's Host header."""
    return f"{settings.PORTAL_BASE_URL}{reverse(name, args=args)}"


def server_configured() -> bool:
    """False when mails would go to SMTP with no server to go to (spec.portal.smtp unset): they are not sent."""
    return bool(settings.EMAIL_HOST) or not settings.EMAIL_BACKEND.endswith(".smtp.EmailBackend")


def render(template: str, context: dict, language: str, to: list[str]) -> dict:
    """The mail of `template` (subject, text, HTML) in `language`, to `to`, as plain data the queue can keep."""
    context = {"organization_name": settings.ORGANIZATION_NAME, "realm": settings.REALM, **context}
    with translation.override(language or settings.LANGUAGE_CODE):
        return {
            "subject": render_to_string(f"{template}_subject.txt", context).strip(),
            "text": render_to_string(f"{template}.txt", context),
            "html": render_to_string(f"{template}.html", context),
            "to": to,
        }


def deliver(message: dict, what: str) -> bool:
    """Hand a rendered mail to the mail server; False (logged, without content) when it did not take it."""
    if not server_configured():
        logger.warning("no mail server is configured (spec.portal.smtp): a %s mail is not sent", what)
        return False
    mail = EmailMultiAlternatives(message["subject"], message["text"], to=message["to"])
    mail.attach_alternative(message["html"], "text/html")
    try:
        mail.send()
    except (smtplib.SMTPException, OSError) as exc:
        logger.error("sending a %s mail failed: %s", what, type(exc).__name__)
        return False
    return True


def send(user: User, template: str, context: dict, what: str) -> bool:
    """Render `template` about `user` in their language and send it to them now (the consumer's own mails)."""
    message = render(template, {"user": user, **context}, user.language, [user.email])
    return deliver(message, what)


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


# --- the queue: what requests ask for ----------------------------------------------------------------


def queue_token_mail(user: User, kind: QueuedMail.Kind, language: str | None = None) -> QueuedMail:
    """Queue the verification (VERIFY) or reset (RESET) mail of `user`; its token is issued when it is sent."""
    return QueuedMail.objects.create(kind=kind, user=user, language=language or translation.get_language() or "")


def queue_reset_by_address(address: str, language: str | None = None) -> QueuedMail:
    """Queue a reset mail for whichever enabled account `address` has, if any: the relay finds out, not the
    request that asked."""
    return QueuedMail.objects.create(
        kind=QueuedMail.Kind.RESET_BY_ADDRESS, address=address, language=language or translation.get_language() or ""
    )


def queue_notice(
    template: str,
    *,
    user: User | None = None,
    address: str = "",
    recipients: tuple[str, ...] = (),
    context: dict | None = None,
    language: str | None = None,
) -> QueuedMail:
    """Queue a mail of `template` (with `context`, plain JSON) to `recipients`, else `address`, else `user`."""
    return QueuedMail.objects.create(
        kind=QueuedMail.Kind.NOTICE,
        user=user,
        address=address,
        recipients=list(recipients),
        template=template,
        context=context or {},
        language=language if language is not None else translation.get_language() or "",
    )


# --- the relay's side: turning a queued mail into a mail ---------------------------------------------


def resettable(address: str) -> User | None:
    """The account a reset by `address` is for: a person's, enabled, with that confirmed address; or an imported
    person's waiting to be claimed (the reset mail is how they prove the address and choose a password)."""
    people = User.objects.with_address(address)
    enabled = people.filter(
        email_verified_at__isnull=False, directory_state=User.DirectoryState.ENABLED, is_staff=False
    )
    return enabled.first() or people.claimable().first()


def build(queued: QueuedMail) -> dict | None:
    """The mail `queued` stands for, its token issued now; None when there is none to send (no account for the
    address, the registration's mails used up, the address confirmed meanwhile)."""
    if queued.kind == QueuedMail.Kind.NOTICE:
        to = queued.recipients or [queued.address or queued.user.email]
        return render(queued.template, {"user": queued.user, **queued.context}, queued.language, to)
    user = resettable(queued.address) if queued.kind == QueuedMail.Kind.RESET_BY_ADDRESS else queued.user
    if user is None or (queued.kind == QueuedMail.Kind.VERIFY and user.is_email_verified):
        return None
    purpose = _PURPOSE_OF[QueuedMail.Kind(queued.kind)]
    try:
        issued = tokens.issue(user, purpose)
    except tokens.TokenError:
        return None
    url_name, template = _TOKEN_MAILS[purpose]
    context = {
        "user": user,
        # The token rides in the query string, which the access log leaves out.
        "link": f"{page_url(url_name)}?{urlencode({'token': issued.token})}",
        "code": issued.code,
        "hours": settings.TOKEN_TTL_HOURS,
        "retention_days": round(settings.UNVERIFIED_RETENTION_HOURS / 24, 1),
    }
    return render(template, context, queued.language or user.language, [user.email])
