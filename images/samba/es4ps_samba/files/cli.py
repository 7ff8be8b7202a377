"""The command line of the file server: `es4ps-files run | ready | home ... | share ... | dfree ...`.

run     write smb.conf, start the realm's resolver (dnsmasq), join if needed, prepare folders, run winbindd,
        smbd (and cupsd) until told to stop; serve the metrics (es4ps_samba.files.metrics) meanwhile
ready   the readiness probe: winbindd reaches a DC and smbd listens
home    smbd's root preexec for a home: the person's folder, made at their first connection
share   smbd's root preexec for a group share: its folder, owned by its group
dfree   smbd's dfree command for a home: the quota as its size and free space
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from es4ps_contract.environment import SettingError
from es4ps_contract.resolver import dnsmasq_forwarder

from . import printing, resolver
from .config import ACCESS, FilesConfig
from .folders import home_space, make_home, prepare_data_dir, prepare_share
from .metrics import serve_metrics
from .smbconf import dfree_script, render

PROGRAM = "es4ps-files"


def log(message: str) -> None:
    print(f"{PROGRAM}: {message}", flush=True)


def _net(config: FilesConfig, *arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603, S607
        ["net", f"--configfile={config.smb_conf}", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def join(config: FilesConfig) -> None:
    """Join the domain as this file server's own computer, unless the join holds (`net ads testjoin`).

    The Administrator's password travels in the environment (PASSWD); `net ads join` takes the machine
    password only as an argument, so it is on this container's process list for the second the join takes.
    """
    if _net(config, "ads", "testjoin").returncode == 0:
        return
    log(f"joining {config.realm} as {config.hostname.upper()}")
    result = _net(
        config,
        "ads",
        "join",
        "-U",
        "Administrator",
        "-S",
        config.join_server,
        "--no-dns-updates",
        f"machinepass={config.machine_password()}",
        env={"PASSWD": config.admin_password()},
    )
    if result.returncode != 0:
        raise SettingError(f"the join failed: {(result.stderr or result.stdout).strip()[-400:]}")


def _wait(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise SettingError(f"{what} did not happen within {timeout_s:.0f} s")
        time.sleep(0.5)


def winbind_answers() -> bool:
    """winbindd answers and reaches a DC (wbinfo finds it by its socket, /run/samba/winbindd)."""
    return subprocess.run(["wbinfo", "--ping-dc"], capture_output=True, timeout=30).returncode == 0  # noqa: S603, S607


def listens(port: int) -> bool:
    """Something accepts TCP connections on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def smbd_listens() -> bool:
    return listens(445)


def _daemon(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command)  # noqa: S603


def start(config: FilesConfig, daemons: list[subprocess.Popen]) -> None:
    """smb.conf, the realm's resolver, the join, the folders, then the daemons into `daemons` (winbindd first: the
    folders' groups come from it)."""
    command = f"{shlex.quote(sys.executable)} -m es4ps_samba.files.cli"  # smbd runs it through sh -c
    config.smb_conf.parent.mkdir(parents=True, exist_ok=True)
    config.smb_conf.write_text(render(config, command))
    if config.homes_quota_bytes:
        config.dfree_script.parent.mkdir(parents=True, exist_ok=True)
        config.dfree_script.write_text(dfree_script(config, command))
        config.dfree_script.chmod(0o755)
    prepare_data_dir(config)
    start_resolver(config, daemons)
    join(config)
    samba = [f"--configfile={config.smb_conf}", "--foreground", "--no-process-group", "--debug-stdout"]
    daemons.append(_daemon(["winbindd", *samba]))
    _wait(lambda: winbind_answers(), 60, "winbindd reaching a DC")
    for share in config.shares:
        try:
            prepare_share(config.shares_dir, share.name, share.groups[0], share.writable)
        except SettingError as exc:
            log(f"{exc}: made at the first connection")
    if config.printing:
        printing.write_cups_files(config)
        daemons.append(_daemon(printing.cupsd_command()))
        _wait(printing.CUPS_SOCKET.exists, 30, "cupsd listening")
        printing.add_pdf_queue()
    daemons.append(_daemon(["smbd", *samba]))


def start_resolver(config: FilesConfig, daemons: list[subprocess.Popen]) -> None:
    """dnsmasq sending the realm to the join server's DNS, first in resolv.conf (es4ps_samba.files.resolver)."""
    pod_resolv_conf = resolver.RESOLV_CONF.read_text()
    command = dnsmasq_forwarder(
        resolver.LISTEN,
        config.realm,
        resolver.dc_address(config.join_server),
        resolver.pod_nameservers(pod_resolv_conf),
    )
    daemons.append(_daemon(command))
    _wait(lambda: listens(53), 30, "dnsmasq listening")
    resolver.RESOLV_CONF.write_text(resolver.with_resolver_first(pod_resolv_conf))


def supervise(daemons: list[subprocess.Popen]) -> int:
    """Until one daemon exits or this process is told to stop; then stop the others."""
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    while not stopping and daemons:
        exited = [daemon for daemon in daemons if daemon.poll() is not None]
        if exited:
            log(f"{exited[0].args[0]} exited with status {exited[0].returncode}")
            status = 1
            break
        time.sleep(0.5)
    stop_all(daemons)
    return status


def stop_all(daemons: list[subprocess.Popen]) -> None:
    """SIGTERM each daemon still running, then wait for all (SIGKILL after 20 s)."""
    for daemon in daemons:
        if daemon.poll() is None:
            daemon.terminate()
    for daemon in daemons:
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run")
    commands.add_parser("ready")
    home = commands.add_parser("home")
    home.add_argument("homes_dir", type=Path)
    home.add_argument("name")
    share = commands.add_parser("share")
    share.add_argument("shares_dir", type=Path)
    share.add_argument("name")
    share.add_argument("group")
    share.add_argument("access", choices=ACCESS)
    dfree = commands.add_parser("dfree")
    dfree.add_argument("quota_bytes", type=int)
    dfree.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    daemons: list[subprocess.Popen] = []
    try:
        if args.command == "home":
            make_home(args.homes_dir, args.name)
            return 0
        if args.command == "dfree":
            print(*home_space(args.path, args.quota_bytes))
            return 0
        if args.command == "share":
            prepare_share(args.shares_dir, args.name, args.group, args.access == "readWrite")
            return 0
        config = FilesConfig.from_env(os.environ)
        if args.command == "ready":
            return 0 if smbd_listens() and winbind_answers() else 1
        start(config, daemons)
        serve_metrics(config)
    except (SettingError, OSError, subprocess.CalledProcessError) as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        stop_all(daemons)
        return 1
    log("serving")
    return supervise(daemons)


if __name__ == "__main__":
    sys.exit(main())
