"""CPU time of the services' processes, and their time waiting for a CPU, from /proc: for benchmarks, where CPU
time hardly moves with what else the shared machine runs, unlike rates."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def cpu_seconds(groups: list[int]) -> float:
    """CPU time (user + system, with reaped children) of every process in the process groups `groups`."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[2]) in groups:  # field 5 of stat, the process group
            total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / ticks


def cpu_wait_seconds(groups: list[int]) -> float:
    """Time every thread of the processes in the process groups `groups` spent runnable, waiting for a CPU (the
    scheduler's run delay, /proc/PID/task/TID/schedstat): a service that is never idle for want of work but
    still falls short of a full core waits here."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) not in groups:
                continue
            total += sum(int(t.read_text().split()[1]) for t in stat.parent.glob("task/*/schedstat"))
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
    return total / 1e9


def with_cpu_ms(groups: dict[str, list[int]], accounts: int, action: Callable[[], T]) -> tuple[T, dict[str, float]]:
    """`action()`'s result and, per name in `groups`, the CPU milliseconds its processes spent per account."""
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    value = action()
    return value, {name: (cpu_seconds(pids) - before[name]) * 1000 / accounts for name, pids in groups.items()}
