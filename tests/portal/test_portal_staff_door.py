"""The staff door, tried as an attacker holding a staff password would: a second factor, the admin's host and
source ranges, and every sign-in in the audit trail (in process, the real forms and middleware)."""

from __future__ import annotations

import io
import ipaddress
import time

import pytest
from django.core.management import call_command
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from es4ps_portal.accounts.models import User
from es4ps_portal.audit.models import AuditRecord
from es4ps_testkit.live_portal import totp_key
from es4ps_testkit.registration import unique_username

pytestmark = pytest.mark.django_db

PASSWORD = "Staff-Passw0rd!-door"  # noqa: S105 - a test password
INSIDE, OUTSIDE = "192.0.2.10", "203.0.113.9"


def staff_member(**changes) -> User:
    return User.objects.create_user(
        unique_username("staff"), "staff@acme.example", PASSWORD, is_staff=True, is_superuser=True, **changes
    )


def enrol(user: User) -> bytes:
    """The authenticator's key, as `es4ps-portal manage staff_totp` prints it (in its otpauth:// address)."""
    out = io.StringIO()
    call_command("staff_totp", user.username, stdout=out)
    return totp_key(out.getvalue())


def admin_sign_in(client: Client, user: User, token: str = "") -> object:
    data = {"username": user.username, "password": PASSWORD, "otp_token": token, "next": "/admin/"}
    return client.post("/admin/login/?next=/admin/", data)


def reaches_the_admin(client: Client) -> bool:
    response = client.get("/admin/")
    return response.status_code == 200 and "/admin/logout/" in response.content.decode()


def sign_ins(user: User) -> list[tuple[str, str]]:
    records = AuditRecord.objects.filter(action=AuditRecord.Action.STAFF_SIGN_IN, actor=user.username)
    return [(r.outcome, r.detail) for r in records.order_by("at", "id")]


def test_staff_without_a_second_factor_cannot_reach_the_admin():
    user = staff_member()
    client = Client(HTTP_X_FORWARDED_FOR=INSIDE)
    refused = admin_sign_in(client, user)
    assert refused.status_code == 200 and not reaches_the_admin(client)
    assert not reaches_the_admin(client)
    # Any code at all: there is no device to match it.
    admin_sign_in(client, user, token="123456")  # noqa: S106 (a code, not a password)
    assert not reaches_the_admin(client)
    # The people's sign-in takes no staff name, and a session signed in by password alone is not the admin's.
    assert client.post("/login/", {"username": user.username, "password": PASSWORD}).status_code == 200
    client.force_login(user, backend="es4ps_portal.accounts.backends.StaffBackend")
    assert client.get("/admin/").status_code == 302 and not reaches_the_admin(client)


def test_a_totp_sign_in_works_and_every_attempt_is_audited():
    user = staff_member()
    key = enrol(user)
    client = Client(HTTP_X_FORWARDED_FOR=INSIDE)
    admin_sign_in(client, user, token="000000" if f"{totp(key):06d}" != "000000" else "111111")
    assert not reaches_the_admin(client)
    bad_password = client.post("/admin/login/", {"username": user.username, "password": "wrong", "otp_token": ""})
    assert bad_password.status_code == 200
    # django-otp throttles a device after a wrong code (one second after one failure): wait that out.
    time.sleep(1.1)
    signed_in = admin_sign_in(client, user, token=f"{totp(key):06d}")
    assert signed_in.status_code == 302 and signed_in["Location"] == "/admin/"
    assert reaches_the_admin(client)
    wrong_code = "right password; the second factor's code was missing or wrong (or the member has no device)"
    assert sign_ins(user) == [
        ("failed", wrong_code),
        ("failed", "wrong username or password, or not staff"),
        ("succeeded", "password and second factor"),
    ]
    first = AuditRecord.objects.filter(action=AuditRecord.Action.STAFF_SIGN_IN, actor=user.username).first()
    assert first.address == INSIDE and first.subject == user.username


def test_a_sign_in_as_nobody_is_audited_under_the_name_typed():
    client = Client(HTTP_X_FORWARDED_FOR=INSIDE)
    client.post("/admin/login/", {"username": "nobody-here", "password": "x", "otp_token": "1"})
    record = AuditRecord.objects.get(action=AuditRecord.Action.STAFF_SIGN_IN, actor="nobody-here")
    assert (record.outcome, record.subject, record.actor_kind) == ("failed", "", "person")


def test_enrolment_prints_its_key_once_and_replacing_it_ends_the_old_one():
    user = staff_member()
    first = enrol(user)
    again = io.StringIO()
    call_command("staff_totp", user.username, stdout=again)
    assert "has an authenticator already" in again.getvalue() and "otpauth://" not in again.getvalue()
    replaced = io.StringIO()
    call_command("staff_totp", user.username, "--replace", stdout=replaced)
    second = totp_key(replaced.getvalue())
    assert second != first and TOTPDevice.objects.filter(user=user).count() == 1
    client = Client(HTTP_X_FORWARDED_FOR=INSIDE)
    admin_sign_in(client, user, token=f"{totp(first):06d}")
    assert not reaches_the_admin(client)
    enrolled = AuditRecord.objects.filter(action=AuditRecord.Action.ENROLL_SECOND_FACTOR, subject=user.username)
    assert enrolled.count() == 2


def test_the_admin_refuses_a_source_outside_the_named_ranges(settings):
    settings.ADMIN_SOURCE_RANGES = (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8:1::/48"))
    user = staff_member()
    key = enrol(user)
    outsider = Client(HTTP_X_FORWARDED_FOR=OUTSIDE)
    assert outsider.get("/admin/login/").status_code == 403
    # Even with every credential: the form is never reached.
    assert admin_sign_in(outsider, user, token=f"{totp(key):06d}").status_code == 403
    assert not sign_ins(user)
    # The client's own claim in X-Forwarded-For does not count, only what the trusted proxy appended.
    claimed = Client(HTTP_X_FORWARDED_FOR=f"{INSIDE}, {OUTSIDE}")
    assert claimed.get("/admin/login/").status_code == 403
    assert Client(HTTP_X_FORWARDED_FOR="2001:db8:1:5::7").get("/admin/login/").status_code == 200
    assert Client(HTTP_X_FORWARDED_FOR=INSIDE).get("/admin/login/").status_code == 200
    # The people's pages stay open to everybody.
    assert outsider.get("/register/").status_code == 200


def test_on_its_own_host_the_admin_is_not_on_the_public_one(settings):
    settings.ADMIN_HOST = "admin.testserver"
    settings.ALLOWED_HOSTS = ["testserver", "admin.testserver"]
    public, door = (
        Client(HTTP_X_FORWARDED_FOR=INSIDE),
        Client(HTTP_X_FORWARDED_FOR=INSIDE, HTTP_HOST="admin.testserver"),
    )
    assert public.get("/admin/login/").status_code == 404
    assert door.get("/admin/login/").status_code == 200
    assert door.get("/register/").status_code == 404
    assert door.get("/")["Location"] == "/admin/"
    assert public.get("/register/").status_code == 200
