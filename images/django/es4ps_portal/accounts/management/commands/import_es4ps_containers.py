"""`es4ps-portal manage import_es4ps_containers SOURCE`: ES4PS-Containers' people as portal records to claim.

SOURCE is the old portal's database: its db.sqlite3, a `.sql` dump of it, a
`.json` dumpdata of main.CollegeUser, or a postgres:// URL (accounts.legacy_portal).
What becomes of each row is es4ps_portal.accounts.imports'; this prints the
report (and writes it as JSON with --report), and writes the accounts the
administrator's step moves into the managed OU (--accounts-file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from es4ps_portal.accounts.imports import import_people
from es4ps_portal.accounts.legacy_portal import SourceError, read_college_users


def _write(path: str, content: dict | list) -> None:
    """Write `content` as JSON to `path`, whole or not at all (a file readable by its owner only: it holds
    addresses)."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(content, out, indent=2, ensure_ascii=False)
        out.write("\n")
    partial.replace(target)


class Command(BaseCommand):
    help = "Import ES4PS-Containers' people (its CollegeUser rows) as portal records they claim; deletes nothing."

    def add_arguments(self, parser) -> None:
        parser.add_argument("source", help="db.sqlite3, a .sql dump, a .json dumpdata, or a postgres:// URL")
        parser.add_argument("--dry-run", action="store_true", help="report what would be imported; write nothing")
        parser.add_argument("--report", metavar="FILE", help="also write the report as JSON to FILE")
        parser.add_argument(
            "--accounts-file",
            metavar="FILE",
            help="write the imported accounts (name, address) for `es4ps-samba-dc move-legacy-accounts`",
        )

    def handle(self, *args, source: str, dry_run: bool, report: str | None, accounts_file: str | None, **options):
        try:
            rows = read_college_users(source)
        except SourceError as exc:
            raise CommandError(str(exc)) from None
        result = import_people(rows, dry_run=dry_run)
        summary = result.as_dict()
        verb = "would be imported" if dry_run else "imported"
        self.stdout.write(f"{len(rows)} rows read")
        self.stdout.write(f"{len(result.imported)} {verb}, {len(result.already_imported)} already imported")
        for entry in summary["skipped"]:
            self.stdout.write(f"skipped row {entry['row']} ({entry['username']}): {entry['reason']}")
        self.stdout.write(f"{len(result.skipped)} skipped")
        if report:
            _write(report, {"dry_run": dry_run, **summary})
        if accounts_file:
            _write(accounts_file, result.accounts_to_move())
