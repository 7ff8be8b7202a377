"""ES4PS-Containers' portal database as the import reads it: its `CollegeUser` rows (table `main_collegeuser`).

ES4PS-Containers (the Docker Compose stack this project grew from) keeps its
people in the Django model `main.CollegeUser`, in SQLite by default. The
import reads them, and only them, from:

- the SQLite file itself (`db.sqlite3`, or a `sqlite:///...` URL), opened read-only;
- its SQL dump (`sqlite3 db.sqlite3 .dump`, a file ending in `.sql`), loaded
  into a database in memory;
- `manage.py dumpdata main.CollegeUser` (a file ending in `.json`);
- a PostgreSQL URL (`postgres://user@host/db`), where an installation moved
  its portal to PostgreSQL (read in one read-only transaction).

The old password hashes are never read. Nothing is written to the source.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

TABLE = "main_collegeuser"
MODEL = "main.collegeuser"
# The columns read (the password hash and the verification token are not among them).
COLUMNS = (
    "id", "username", "email", "first_name", "last_name", "is_verified", "is_staff", "is_superuser", "is_admin",
    "is_active", "date_joined",
)  # fmt: skip
# Fixed names: the query holds no input.
_QUERY = f'SELECT {", ".join(COLUMNS)} FROM "{TABLE}" ORDER BY id'  # noqa: S608


class SourceError(Exception):
    """The old database cannot be read as ES4PS-Containers' portal database; the message says why."""


@dataclass(frozen=True)
class CollegeUser:
    """One row of the old portal: a person (or a staff member) and what the old portal knew of them."""

    row: int
    username: str
    email: str
    first_name: str
    last_name: str
    verified: bool
    staff: bool
    active: bool
    joined: datetime.datetime


def _moment(value) -> datetime.datetime:
    """A `date_joined` as SQLite, dumpdata or PostgreSQL give it, as an aware time (Django stores UTC)."""
    if isinstance(value, datetime.datetime):
        moment = value
    else:
        moment = datetime.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _person(fields: dict, row: int) -> CollegeUser:
    return CollegeUser(
        row=row,
        username=str(fields["username"] or ""),
        email=str(fields["email"] or ""),
        first_name=str(fields["first_name"] or ""),
        last_name=str(fields["last_name"] or ""),
        verified=bool(fields["is_verified"]),
        staff=any(bool(fields.get(flag)) for flag in ("is_staff", "is_superuser", "is_admin")),
        active=bool(fields["is_active"]),
        joined=_moment(fields["date_joined"]),
    )


def _from_sqlite(connection: sqlite3.Connection) -> list[CollegeUser]:
    connection.row_factory = sqlite3.Row
    try:
        rows = connection.execute(_QUERY).fetchall()
    except sqlite3.Error as exc:
        raise SourceError(f"no readable {TABLE} table: {exc}") from None
    return [_person(dict(row), row["id"]) for row in rows]


def _sqlite_file(path: Path) -> list[CollegeUser]:
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise SourceError(f"{path} is not a SQLite database: {exc}") from None
    with contextlib.closing(connection):
        return _from_sqlite(connection)


def _sql_dump(path: Path) -> list[CollegeUser]:
    with contextlib.closing(sqlite3.connect(":memory:")) as connection:
        try:
            connection.executescript(path.read_text(encoding="utf-8"))
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            raise SourceError(f"{path} is not a SQLite dump (sqlite3 db.sqlite3 .dump): {exc}") from None
        return _from_sqlite(connection)


def _dumpdata(path: Path) -> list[CollegeUser]:
    try:
        objects = json.loads(path.read_text(encoding="utf-8"))
        rows = [obj for obj in objects if obj.get("model") == MODEL]
        return [_person({**obj["fields"], "id": obj["pk"]}, obj["pk"]) for obj in rows]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SourceError(f"{path} is not `dumpdata main.CollegeUser` output: {exc!r}") from None


def _postgresql(url: str) -> list[CollegeUser]:
    import psycopg
    from psycopg.rows import dict_row

    try:
        with psycopg.connect(url, row_factory=dict_row) as connection:
            connection.read_only = True
            rows = connection.execute(_QUERY).fetchall()
    except psycopg.Error as exc:
        # The message names the host and the problem, never the URL (it may hold a password).
        raise SourceError(f"the PostgreSQL database could not be read: {type(exc).__name__}: {exc}") from None
    return [_person(row, row["id"]) for row in rows]


def read_college_users(source: str) -> list[CollegeUser]:
    """Every `CollegeUser` row of `source` (a file or a database URL), in the old portal's order."""
    if source.startswith(("postgres://", "postgresql://")):
        return _postgresql(source)
    path = Path(source.removeprefix("sqlite:///") if source.startswith("sqlite:///") else source)
    if not path.is_file():
        raise SourceError(f"{path}: no such file (a db.sqlite3, a .sql dump, a .json dumpdata or a postgres:// URL)")
    if path.suffix == ".sql":
        return _sql_dump(path)
    if path.suffix == ".json":
        return _dumpdata(path)
    return _sqlite_file(path)
