"""Dumping and restoring the portal's whole database, SQLite or PostgreSQL, without losing anything."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"
# Next to a restored SQLite database: the digest of the dump it came from (a second run does nothing).
RESTORED_MARKER = ".es4ps-restored"
# In a restored PostgreSQL database, the same: a table of one row (its name is in the SQL below).
RESTORED_TABLE = "es4ps_restored"


class DumpError(RuntimeError):
    """A dump or restore cannot be done; the message says why (never a password)."""


def _is_sqlite() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"


def _pg_url() -> str:
    database = settings.DATABASES["default"]
    user = database.get("USER") or ""
    host = database.get("HOST") or "localhost"
    port = database.get("PORT") or 5432
    return f"postgresql://{user}@{host}:{port}/{database['NAME']}"


def _pg_env() -> dict[str, str]:
    """libpq takes the password from the environment of the tool only, never from its command line."""
    return {**os.environ, "PGPASSWORD": str(settings.DATABASES["default"].get("PASSWORD") or "")}


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dump(target: Path) -> str:
    """Write a consistent copy of the database to `target`; returns its kind (sqlite or postgresql)."""
    if _is_sqlite():
        source = sqlite3.connect(settings.DATABASES["default"]["NAME"])
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)  # one consistent snapshot, while the portal keeps writing
        finally:
            copy.close()
            source.close()
        return "sqlite"
    result = subprocess.run(  # noqa: S603
        ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={target}", _pg_url()],  # noqa: S607
        env=_pg_env(),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise DumpError(f"pg_dump failed: {result.stderr.strip()[-300:]}")
    return "postgresql"


def _database_is_empty() -> bool:
    return "django_migrations" not in connection.introspection.table_names()


def restore(source: Path) -> str:
    """Restore a dump into this portal's database, which must be empty; returns what happened."""
    header = source.read_bytes()[:16]
    if _is_sqlite():
        if not header.startswith(SQLITE_MAGIC):
            raise DumpError("the dump is not an SQLite database (a PostgreSQL portal's dump needs PostgreSQL)")
        database = Path(settings.DATABASES["default"]["NAME"])
        marker = database.parent / RESTORED_MARKER
        digest = _digest(source)
        if marker.exists() and marker.read_text().strip() == digest:
            return "already restored"
        holds_a_portal = database.exists() and not _database_is_empty()
        connection.close()  # the file is replaced underneath: no connection may keep the old one
        if holds_a_portal:
            raise DumpError(f"{database} holds a portal already: not restored over it")
        database.parent.mkdir(parents=True, exist_ok=True)
        staging = database.with_name(database.name + ".restoring")
        shutil.copyfile(source, staging)
        for leftover in (database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
            leftover.unlink(missing_ok=True)
        staging.replace(database)
        marker.write_text(digest + "\n")
        return "restored"
    if not header.startswith(PG_DUMP_MAGIC):
        raise DumpError("the dump is not a PostgreSQL dump (an SQLite portal's dump needs SQLite)")
    digest = _digest(source)
    if not _database_is_empty():
        if _restored_from() == digest:
            return "already restored"
        raise DumpError("the database holds a portal already: not restored over it")
    # One transaction: a restore that fails half-way leaves the database empty, so the Job's retry restores it.
    result = subprocess.run(  # noqa: S603
        [  # noqa: S607
            "pg_restore",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            f"--dbname={_pg_url()}",
            str(source),
        ],
        env=_pg_env(),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise DumpError(f"pg_restore failed: {result.stderr.strip()[-300:]}")
    with transaction.atomic(), connection.cursor() as cursor:
        # A dump of a portal that was restored itself brings the table along, with that restore's digest.
        cursor.execute("CREATE TABLE IF NOT EXISTS es4ps_restored (dump_sha256 text NOT NULL)")
        cursor.execute("DELETE FROM es4ps_restored")
        cursor.execute("INSERT INTO es4ps_restored (dump_sha256) VALUES (%s)", [digest])
    return "restored"


def _restored_from() -> str | None:
    """The digest of the dump this PostgreSQL database was restored from, if it was."""
    if RESTORED_TABLE not in connection.introspection.table_names():
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT dump_sha256 FROM es4ps_restored")
        row = cursor.fetchone()
    return row[0] if row else None
