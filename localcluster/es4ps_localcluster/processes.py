"""Processes of the local cluster, the tests and the benchmarks: start, wait for, stop. The one supervisor.

- `start_process` / `stop_process_group`: a child in its own session with its
  output appended to a log file; stopped with SIGTERM, then SIGKILL for the
  whole group, so no grandchild is left behind.
- `Supervisor`: the same for processes that outlive this Python process (the
  cluster's components, the demo's mail catcher, dockerd): each is recorded in
  `<pids>/<name>.pid` with the binary it runs, and only a live process still
  running that binary is ever signalled.
- `wait_until`: the one polling loop; says what it waited for, and with the
  tail of a log when a process is involved.

A process may start inside a network namespace (`netns`, a path such as
/run/netns/NAME): the local cluster's nodes each have one. Only the network is
entered (setns in the child before exec), so the node's processes still share
this machine's mounts, and their pid records name their own binaries.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` different TCP ports nobody listens on right now."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind((host, 0))
        return [probe.getsockname()[1] for probe in probes]


def port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0


def http_ok(url: str, context: ssl.SSLContext | None = None, timeout_s: float = 3) -> bool:
    """True when `url` answers 200 (a readiness probe; any error counts as "not yet")."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout_s) as response:  # noqa: S310 (local URLs)
            return response.status == 200
    except (OSError, ValueError):
        return False


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def wait_until(
    condition: Callable[[], T],
    timeout_s: float,
    what: str | Callable[[], str],
    log: Path | None = None,
    process: subprocess.Popen | None = None,
    *,
    interval_s: float = 0.2,
    error: type[Exception] = TimeoutError,
) -> T:
    """Call `condition` until it returns something truthy, and return that.

    Raises `error` naming `what` (a callable is asked at the end, to describe the
    last state seen) when `timeout_s` passes, or at once when `process` exits;
    the message ends with the tail of `log`.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        exited = process is not None and process.poll() is not None
        if exited or time.monotonic() >= deadline:
            described = what() if callable(what) else what
            reason = (
                f"the process exited with {process.returncode}" if exited else f"not reached within {timeout_s:.0f} s"
            )
            tail = f"\n{log}:\n{log_tail(log)}" if log else ""
            raise error(f"{described}: {reason}{tail}")
        time.sleep(interval_s)


CLONE_NEWNET = 0x40000000


def _network_namespace_entry(netns: Path) -> Callable[[], None]:
    """What the child runs before exec to move into the network namespace `netns` (Python 3.11 has no os.setns)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def enter() -> None:
        fd = os.open(netns, os.O_RDONLY)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({netns})")
        os.close(fd)

    return enter


def start_process(
    command: list[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    netns: Path | None = None,
) -> subprocess.Popen:
    """Start a command in its own session (process group) with stdout and stderr appended to `log`.

    With `netns`, in that network namespace (and this machine's mounts).
    """
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_network_namespace_entry(netns) if netns else None,  # noqa: PLW1509 - setns before exec
        )


def _stop_group(group: int, alive: Callable[[], bool], timeout_s: float) -> None:
    """SIGTERM the group, wait up to `timeout_s` for its leader, then SIGKILL whatever is left in it.

    `timeout_s` 0: no SIGTERM, only SIGKILL.
    """
    if timeout_s > 0:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: not alive(), timeout_s, "the process to stop")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def stop_process_group(process: subprocess.Popen | None, timeout_s: float = 15) -> None:
    """Stop a child started by `start_process`, its children too."""
    if process is None:
        return
    _stop_group(process.pid, lambda: process.poll() is None, timeout_s)
    process.wait()


class Supervisor:
    """Background processes recorded by name, to be found and stopped by a later command.

    `<pids>/<name>.pid` holds the pid and the binary (argv[0]); `<logs>/<name>.log` the output.
    """

    def __init__(self, pids: Path, logs: Path) -> None:
        self.pids = pids
        self.logs = logs
        # the processes this object started, to notice at once when one exits during start-up
        self._started: dict[str, subprocess.Popen] = {}

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        netns: Path | None = None,
    ) -> subprocess.Popen | None:
        """Start `argv` as `name` (in the network namespace `netns`) unless a recorded process of that name runs."""
        if self.pid(name):
            return None
        self.pids.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        process = start_process(argv, self.log(name), env, cwd, netns)
        self.record(name, process)
        return process

    def record(self, name: str, process: subprocess.Popen) -> None:
        """Record a process started elsewhere (in its own session) under `name`."""
        self.pids.mkdir(parents=True, exist_ok=True)
        argv0 = process.args[0] if isinstance(process.args, list | tuple) else str(process.args)
        (self.pids / f"{name}.pid").write_text(f"{process.pid}\n{argv0}\n")
        self._started[name] = process

    def pid(self, name: str) -> int | None:
        """The pid recorded for `name` if that process is alive and still runs the recorded binary."""
        try:
            pid_text, binary = (self.pids / f"{name}.pid").read_text().split("\n")[:2]
            pid = int(pid_text)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError):
            return None
        started = self._started.get(name)
        if started is not None and started.pid == pid:
            # our own child: its word counts (right after exec, /proc may not show the command line yet)
            return pid if started.poll() is None else None
        return pid if cmdline == str(binary) and state != "Z" else None

    def running(self) -> dict[str, int]:
        """Recorded processes that are still alive, name -> pid."""
        alive = {}
        for record in sorted(self.pids.glob("*.pid")):
            pid = self.pid(record.stem)
            if pid:
                alive[record.stem] = pid
        return alive

    def wait(self, name: str, check: Callable[[], T], timeout_s: float, error: type[Exception] = TimeoutError) -> T:
        """`wait_until(check)` for the process `name`: fails at once if this object started it and it exited."""
        return wait_until(check, timeout_s, name, self.log(name), self._started.get(name), interval_s=0.5, error=error)

    def stop(self, name: str, timeout_s: float = 15, *, warn: bool = True) -> None:
        """Stop the recorded process `name` and its group (nothing, if the record is stale), forget it.

        Not `warn`: SIGKILL at once, as a machine that loses power stops it.
        """
        pid = self.pid(name)
        if pid:
            _stop_group(pid, lambda: self.pid(name) == pid, timeout_s if warn else 0)  # (pid() reaps our child)
        self._started.pop(name, None)
        (self.pids / f"{name}.pid").unlink(missing_ok=True)
