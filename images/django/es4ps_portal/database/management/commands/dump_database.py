"""`es4ps-portal manage dump_database <file>`: a consistent copy of the portal's database (for a backup)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from es4ps_portal.database.dumps import DumpError, dump


class Command(BaseCommand):
    help = "Write a consistent copy of the portal's database (SQLite backup API, or pg_dump) to a file."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args, **options) -> None:
        try:
            kind = dump(options["file"])
        except DumpError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{kind} database dumped to {options['file']} ({options['file'].stat().st_size} bytes)")
