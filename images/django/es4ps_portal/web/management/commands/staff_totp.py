"""`es4ps-portal manage staff_totp <username> [--replace]`: enrol a staff member's authenticator (TOTP).

The admin lets nobody in without a second factor, so the first staff member's
device is made here, by whoever may run commands in the portal's Pod
(`kubectl exec`): it prints the otpauth:// address (and its QR code in the
terminal) to add to an authenticator app, once. Run again, it changes
nothing and prints no key; `--replace` drops the member's TOTP devices and
enrols a new one (a lost phone). Later devices, and other staff members',
are added in the admin (TOTP devices), which shows their QR codes.
"""

from __future__ import annotations

import io

import segno
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from es4ps_portal.accounts.models import User
from es4ps_portal.audit.models import AuditRecord
from es4ps_portal.audit.records import Actor, record

DEVICE_NAME = "authenticator"


class Command(BaseCommand):
    help = "Enrol a staff member's TOTP authenticator (prints its otpauth:// address once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--replace", action="store_true", help="drop the member's TOTP devices, enrol a new one")

    def handle(self, *args, username: str, replace: bool, **options) -> None:
        user = User.objects.filter(username=username, is_staff=True).first()
        if user is None:
            raise CommandError(f"{username!r} is not a staff member")
        with transaction.atomic():
            devices = TOTPDevice.objects.filter(user=user)
            if devices.filter(confirmed=True).exists() and not replace:
                self.stdout.write(f"{username} has an authenticator already (--replace enrols a new one)")
                return
            devices.delete()
            device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=True)
            record(
                AuditRecord.Action.ENROLL_SECOND_FACTOR,
                Actor.portal(),
                subject=user,
                detail="TOTP authenticator (es4ps-portal manage staff_totp)",
            )
        self.stdout.write(f"Add this to {username}'s authenticator app (shown once):\n{device.config_url}\n")
        terminal = io.StringIO()
        segno.make(device.config_url).terminal(out=terminal, compact=True)
        self.stdout.write(terminal.getvalue())
