"""`es4ps-portal manage expire_registrations`: what the results consumer does every hour, on demand."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from es4ps_portal.broker import PublishError
from es4ps_portal.provisioning.expiry import expire_unverified_registrations


class Command(BaseCommand):
    help = "Forget registrations whose e-mail address was not verified within ES4PS_UNVERIFIED_RETENTION_HOURS."

    def handle(self, *args, **options) -> None:
        try:
            count = expire_unverified_registrations()
        except PublishError as exc:
            raise CommandError(f"a task could not be written, nothing more was changed: {exc}") from None
        self.stdout.write(f"{count} unverified registrations expired")
