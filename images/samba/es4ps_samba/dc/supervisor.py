"""Samba as a child of the entrypoint: signals passed on, restarts (a renewed certificate, a DC that joined
again: es4ps_samba.dc.peers), orphans reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from .config import DCConfig
from .health import HealthMonitor
from .tls import install_tls_files, mounted_tls_digest

# How often the health check's restart request is looked at (it costs nothing).
LOOK_AGAIN_S = 5.0


def log(message: str) -> None:
    print(f"es4ps-samba-dc: {message}", flush=True)


def _start_samba(config: DCConfig) -> subprocess.Popen:
    # In the foreground, logging to stdout. In this mode samba leads a process group of its own and
    # passes SIGTERM on to it, so its pid is also the group to wait for.
    return subprocess.Popen(["samba", "--interactive", f"--configfile={config.smb_conf}"])  # noqa: S603, S607


def _stop_samba(samba: subprocess.Popen, timeout_s: float = 30) -> None:
    """SIGTERM samba and wait until its whole process group is gone (its ports are free again)."""
    samba.terminate()
    deadline = time.monotonic() + timeout_s
    while True:
        samba.poll()
        _reap_orphans(keep=samba.pid)
        try:
            os.killpg(samba.pid, 0)
        except ProcessLookupError:
            break
        if time.monotonic() > deadline:
            os.killpg(samba.pid, signal.SIGKILL)
        time.sleep(0.1)
    samba.wait()


def _reap_orphans(keep: int) -> None:
    """Collect exited children other than `keep`: as a container's PID 1 this process inherits orphans."""
    while True:
        try:
            exited = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if exited is None or exited.si_pid == keep:
            return
        os.waitpid(exited.si_pid, 0)


def serve(config: DCConfig, installed_digest: str) -> int:
    """Run samba until it exits or this process is told to stop; restart it on a renewed certificate
    (and when the health check asks, es4ps_samba.dc.peers).

    cert-manager renews the LDAPS certificate before it expires and the kubelet
    swaps the files of the mounted Secret, but Samba reads them only at start:
    without a restart LDAPS would serve the old certificate until it expires.
    A restart takes 1-3 s, once per renewal; clients reconnect.
    """
    samba = _start_samba(config)
    stopping = False
    monitor = HealthMonitor(config) if config.health_port else None
    if monitor is not None:
        monitor.start()

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        samba.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    tls_checked = time.monotonic()
    while True:
        try:
            status = samba.wait(min(config.tls_check_seconds, LOOK_AGAIN_S))
        except subprocess.TimeoutExpired:
            _reap_orphans(keep=samba.pid)
            if stopping:  # the signal reached a samba that was going down or not started yet
                _stop_samba(samba)
                return 0
            reason = None
            if config.tls_cert_file and time.monotonic() - tls_checked >= config.tls_check_seconds:
                tls_checked = time.monotonic()
                mounted = mounted_tls_digest(config)
                if mounted is not None and mounted != installed_digest:
                    reason = "the mounted LDAPS certificate changed: restarting samba to serve it"
            if reason is None and monitor is not None:
                reason = monitor.restart_reason
            if reason:
                log(reason)
                _stop_samba(samba)
                if stopping:  # told to stop while samba was going down: stay down
                    return 0
                installed_digest = install_tls_files(config)
                samba = _start_samba(config)
                if monitor is not None:
                    monitor.samba_started()
            continue
        if stopping:
            _stop_samba(samba)  # also waits for the rest of its process group
            return 0
        log(f"samba exited with status {status}")
        return status if status > 0 else 1
