"""PostgreSQL advisory locks: one replica at a time runs a step that must not run twice at once.

Replicas of the portal share one PostgreSQL database; on their (simultaneous)
start only one may migrate, and only one outbox relay may publish (and one mail
relay send) at a time.
A session-level advisory lock is released by PostgreSQL when its session
ends, so a replica that dies never leaves it held. SQLite serves a single
replica (the CRD refuses more without a database URL): there the lock is
always granted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

# The lock ids (any 64-bit numbers the portal's database uses for nothing else).
SCHEMA_LOCK = 0x6573347073_0001  # migrations, the cache table and the staff user at `serve`'s start
OUTBOX_RELAY_LOCK = 0x6573347073_0002  # a round of the outbox relay
MAIL_RELAY_LOCK = 0x6573347073_0003  # a round of the mail relay


@contextlib.contextmanager
def advisory_lock(connection: BaseDatabaseWrapper, key: int, *, wait: bool) -> Iterator[bool]:
    """Hold advisory lock `key` on `connection` (outside a transaction) for the block; yields whether it is held.

    With `wait`, block until it is free (always yields True); without, yield
    False at once when another session holds it.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_lock(%s)", [key])
            held = True
        else:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            # A broken session has lost the lock already; nothing to give back then.
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
