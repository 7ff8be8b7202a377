"""Single-use, expiring tokens mailed to users: a long random token for the link and a six-digit code.

A new token replaces the user's earlier unused ones of the same purpose, so
only the latest mail works. The link token is long enough to be unguessable;
the code is short, so it allows only a few wrong guesses: per mail, and for
the verification of one registration over all its mails (resending does not
buy more guesses), besides the rate limits. A verification mail never
outlives its registration.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _

from .models import EmailToken, User

CODE_DIGITS = 6


class TokenError(Exception):
    """A token or code cannot be used; the message says why, for the person holding it."""


@dataclass(frozen=True)
class IssuedToken:
    """What goes into the mail; only digests of it are stored."""

    record: EmailToken
    token: str
    code: str


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _code_digest(token_digest: str, code: str) -> str:
    # Keyed: six digits would be trivial to find from a plain hash.
    return salted_hmac("es4ps.email-code", f"{token_digest}:{code}").hexdigest()


# Wrong codes one mail allows (the registration as a whole allows settings.CODE_MAX_ATTEMPTS).
CODE_ATTEMPTS_PER_MAIL = 5


def _expires_at(user: User, purpose: EmailToken.Purpose):
    expires_at = timezone.now() + timedelta(hours=settings.TOKEN_TTL_HOURS)
    if purpose == EmailToken.Purpose.VERIFY_EMAIL and settings.UNVERIFIED_RETENTION_HOURS:
        expires_at = min(expires_at, user.date_joined + timedelta(hours=settings.UNVERIFIED_RETENTION_HOURS))
    return expires_at


def verification_mails_left(user: User) -> int:
    return max(0, settings.VERIFICATION_MAILS_MAX - user.verification_mails)


def issue(user: User, purpose: EmailToken.Purpose) -> IssuedToken:
    """Create a new token for `user`, replacing the unused earlier ones of the same purpose.

    Raises TokenError when the registration has had all its verification mails.
    """
    token = secrets.token_urlsafe(32)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    digest = _token_digest(token)
    with transaction.atomic():
        if purpose == EmailToken.Purpose.VERIFY_EMAIL:
            counted = User.objects.filter(pk=user.pk, verification_mails__lt=settings.VERIFICATION_MAILS_MAX).update(
                verification_mails=models.F("verification_mails") + 1
            )
            if not counted:
                raise TokenError(_("We sent as many mails for this registration as we can. Use the newest one."))
        EmailToken.objects.filter(user=user, purpose=purpose, used_at__isnull=True).delete()
        record = EmailToken.objects.create(
            user=user,
            purpose=purpose,
            token_digest=digest,
            code_digest=_code_digest(digest, code),
            expires_at=_expires_at(user, purpose),
        )
    return IssuedToken(record, token, code)


def _check_usable(record: EmailToken) -> None:
    if record.used_at is not None:
        raise TokenError(_("This link was already used. Each link works once."))
    if record.expires_at <= timezone.now():
        raise TokenError(_("This link has expired. Ask for a new mail."))


def peek(token: str, purpose: EmailToken.Purpose) -> EmailToken:
    """The token's record if it can still be used (without using it); raises TokenError."""
    record = (
        EmailToken.objects.select_related("user").filter(token_digest=_token_digest(token), purpose=purpose).first()
    )
    if record is None:
        raise TokenError(_("This link is not valid. It may have been replaced by a newer mail."))
    _check_usable(record)
    return record


def use(record: EmailToken) -> None:
    """Mark a checked token used; call inside the transaction that acts on it. Raises TokenError.

    The conditional update is the single-use guarantee: of two concurrent uses only one changes a row.
    """
    if not EmailToken.objects.filter(pk=record.pk, used_at__isnull=True).update(used_at=timezone.now()):
        raise TokenError(_("This link was already used. Each link works once."))


def check_code(user: User, code: str, purpose: EmailToken.Purpose) -> EmailToken:
    """The user's current token if `code` matches it (without using it); raises TokenError.

    Call outside a transaction: a wrong code counts against the token and that must stick.
    """
    record = EmailToken.objects.filter(user=user, purpose=purpose, used_at__isnull=True).order_by("-created_at").first()
    if record is None:
        raise TokenError(_("There is no code waiting for you. Ask for a new mail."))
    _check_usable(record)
    user.refresh_from_db(fields=["verification_code_failures"])
    if user.verification_code_failures >= settings.CODE_MAX_ATTEMPTS:
        raise TokenError(_("Too many wrong codes. Use the link in the mail instead."))
    if record.code_attempts >= CODE_ATTEMPTS_PER_MAIL:
        raise TokenError(_("Too many wrong codes. Ask for a new mail, or use the link in this one."))
    if not constant_time_compare(record.code_digest, _code_digest(record.token_digest, code.strip())):
        EmailToken.objects.filter(pk=record.pk).update(code_attempts=models.F("code_attempts") + 1)
        User.objects.filter(pk=user.pk).update(verification_code_failures=models.F("verification_code_failures") + 1)
        raise TokenError(_("That code is not right. Check the mail and try again."))
    return record


def latest_sent_at(user: User, purpose: EmailToken.Purpose):
    """When the newest token of this purpose was issued (None if never)."""
    return (
        EmailToken.objects.filter(user=user, purpose=purpose)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
