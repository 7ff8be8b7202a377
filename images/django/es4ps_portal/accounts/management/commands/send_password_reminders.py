"""`es4ps-portal manage send_password_reminders`: what the results consumer does every hour, on demand."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from es4ps_portal.accounts.password_expiry import send_password_expiry_reminders


class Command(BaseCommand):
    help = "Mail the people whose password expires soon (ES4PS_PASSWORD_EXPIRY_REMINDER_DAYS) or has expired."

    def handle(self, *args, **options) -> None:
        count = send_password_expiry_reminders()
        self.stdout.write(f"{count} password expiry reminders sent")
