"""`es4ps-portal manage restore_database <file>`: the portal's database from a dump, into an empty database."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from es4ps_portal.database.dumps import DumpError, restore


class Command(BaseCommand):
    help = "Restore the portal's database from a dump_database file; never over a database that holds a portal."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args, **options) -> None:
        try:
            outcome = restore(options["file"])
        except DumpError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{options['file']}: {outcome}")
