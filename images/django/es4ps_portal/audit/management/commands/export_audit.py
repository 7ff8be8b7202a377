"""`es4ps-portal manage export_audit --since ...`: the audit trail as JSON lines, oldest first, for a log archive."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from es4ps_portal.audit.models import AuditRecord

_DURATION = re.compile(r"(\d+)([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_since(text: str) -> datetime:
    """A point in time: ISO 8601 (a date, or a date and time; UTC unless it says otherwise), or a duration
    back from now such as 30d, 12h or 15m."""
    text = text.strip()
    if match := _DURATION.fullmatch(text):
        return timezone.now() - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"--since {text!r}: give an ISO date or time (2026-01-31, 2026-01-31T08:00) or 30d, 12h, 15m"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Print the audit records since a date or time (or for a duration back from now) as JSON lines."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", required=True, help="ISO date or time (UTC unless given), or 30d, 12h, 15m")
        parser.add_argument("--until", help="ISO date or time: only records before it (default: now)")

    def handle(self, *args, since: str, until: str | None = None, **options) -> None:
        records = AuditRecord.objects.filter(at__gte=parse_since(since))
        if until:
            records = records.filter(at__lt=parse_since(until))
        for audit_record in records.order_by("at", "id").iterator(chunk_size=2000):
            self.stdout.write(json.dumps(audit_record.as_json(), ensure_ascii=False, sort_keys=True))
