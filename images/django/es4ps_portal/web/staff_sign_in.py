"""The admin's sign-in: a staff member's password and a TOTP code (django-otp), every attempt in the audit trail.

The admin site is django-otp's OTPAdminSite (es4ps_portal.urls): only a
session verified by one of the staff member's devices reaches it, so a
password alone, or a staff member without a device, gets no further than this
form. The first device of a staff member is enrolled with `es4ps-portal
manage staff_totp <username>`; staff with the right add others' in the
admin (TOTP devices). Each attempt, succeeded or not, is an audit record
(`staff_sign_in`) naming what failed: a right password with a wrong code
says the password is known to someone.
"""

from __future__ import annotations

import dataclasses

from django.core.exceptions import ValidationError
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm

from es4ps_portal.audit.models import AuditRecord
from es4ps_portal.audit.records import Actor, record

from .forms import RATE_LIMITED, RateLimitedLoginMixin

# What failed, for the audit record (the person at the form reads Django's and django-otp's own messages).
_WRONG_PASSWORD = "wrong username or password, or not staff"  # noqa: S105 (what failed, not a password)
_WRONG_CODE = "right password; the second factor's code was missing or wrong (or the member has no device)"


def _failure(error: ValidationError, password_accepted: bool) -> str:
    codes = {getattr(e, "code", None) for e in error.error_list} if hasattr(error, "error_list") else set()
    if RATE_LIMITED in codes:
        return "refused: too many attempts"
    return _WRONG_CODE if password_accepted else _WRONG_PASSWORD


class AdminLoginForm(RateLimitedLoginMixin, OTPAdminAuthenticationForm):
    """Username, password and the code of the staff member's authenticator; rate-limited like people's sign-in."""

    def _chosen_device(self, user):
        """The device picked in the form, else the member's only one (django-otp asks to pick one among several,
        so that trying each does not throttle devices that were never used)."""
        chosen = super()._chosen_device(user)
        if chosen is None:
            devices = list(devices_for_user(user, for_verify=True))
            if len(devices) == 1:
                return devices[0]
        return chosen

    def clean(self):
        typed = (self.data.get("username") or "")[:150]
        try:
            cleaned = super().clean()
        except ValidationError as exc:
            user = self.user_cache
            accepted = user is not None and user.is_staff
            self._audit(user.username if accepted else typed, user if accepted else None, exc)
            raise
        self._audit(self.user_cache.username, self.user_cache, None)
        return cleaned

    def _audit(self, name: str, user, error: ValidationError | None) -> None:
        actor = Actor.of(self.request, name)
        if user is not None:
            actor = dataclasses.replace(actor, kind=AuditRecord.ActorKind.STAFF)
        outcome = AuditRecord.Outcome.SUCCEEDED if error is None else AuditRecord.Outcome.FAILED
        detail = "password and second factor" if error is None else _failure(error, user is not None)
        record(AuditRecord.Action.STAFF_SIGN_IN, actor, subject=user, outcome=outcome, detail=detail)
