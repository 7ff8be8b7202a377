"""Resources of this machine that test sessions share (loopback addresses, workstation networks), each held by
one session at a time through a lock file under /tmp: a session that dies lets go of its lock with it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

LOCK_DIR = Path("/tmp")
T = TypeVar("T")


def unclaimed(candidates: Sequence[T], lock_prefix: str) -> Iterator[tuple[T, int]]:
    """Each candidate no other process holds, with its lock file `<lock_prefix>-<candidate>.lock` open and locked.

    The walk starts at a place picked by this process's id, so sessions started together try different ones
    first. Keep the descriptor of the candidate you take; close the descriptor of one you pass over.
    """
    start = os.getpid() % len(candidates)
    for offset in range(len(candidates)):
        candidate = candidates[(start + offset) % len(candidates)]
        descriptor = os.open(LOCK_DIR / f"{lock_prefix}-{candidate}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        yield candidate, descriptor
