"""Authentication backends: staff with local passwords, everybody else against the directory."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from es4ps_contract.validation import InvalidField, normalize_username

from . import directory
from .models import User

# The path settings.AUTHENTICATION_BACKENDS names it by (what a session signed in by it records).
DIRECTORY_BACKEND = "es4ps_portal.accounts.backends.DirectoryBackend"


class StaffBackend(ModelBackend):
    """Django's password check, for staff only: end users have no local password."""

    def user_can_authenticate(self, user) -> bool:
        return user.is_staff and super().user_can_authenticate(user)


class DirectoryBackend(ModelBackend):
    """Checks the password with an LDAP bind to the DC, for users whose e-mail address is verified.

    Never for staff: a staff name is not a directory account of the person
    who signs in with it, whatever the directory holds under that name. A
    name that is no confirmed person's is checked too, as a principal no
    directory holds (`directory.NO_ACCOUNT`): the answer takes as long as a
    wrong password's, and nobody's account counts a failure for it.

    Raises directory.DirectoryUnavailable when the DC cannot answer, so the
    form can say so instead of claiming the password is wrong, and
    PasswordExpired or AccountLocked when that is the directory's answer. A
    sign-in notes when the directory says the password was set (it may have
    been changed on a domain computer): the expiry reminders follow it.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not username or not password:
            return None
        try:
            username = normalize_username(username)
        except InvalidField:
            username = ""
        user = User.objects.filter(username=username, is_active=True, is_staff=False).first()
        if user is None or not user.is_email_verified:
            # The same round trip to the DC as for an account, so the answer's time does not tell who has one.
            directory.bind(directory.NO_ACCOUNT, password)
            return None
        result = directory.bind(user.username, password)
        if result.outcome is directory.Outcome.EXPIRED:
            raise directory.PasswordExpired(user)
        if result.outcome is directory.Outcome.LOCKED:
            raise directory.AccountLocked()
        if result.outcome is not directory.Outcome.ACCEPTED:
            return None
        if result.password_set_at is not None and result.password_set_at != user.password_set_at:
            user.note_password_set(result.password_set_at)
        return user
