"""A staff member signed in to the in-process portal's admin, past its second factor, for tests about the admin.

The sign-in form itself (password, TOTP code, audit records) is tested
through the form (tests/portal/test_portal_staff_door.py); tests of what
staff do once inside start from a session django-otp counts as verified.
"""

from __future__ import annotations

STAFF_BACKEND = "es4ps_portal.accounts.backends.StaffBackend"


def sign_in_staff(client, user) -> None:
    """Sign `user` (staff) in with Django's test `client`, verified by a TOTP device of theirs."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or TOTPDevice.objects.create(
        user=user, name="test authenticator", confirmed=True
    )
    client.force_login(user, backend=STAFF_BACKEND)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
