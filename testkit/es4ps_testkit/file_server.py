"""The domain's file server on this machine: the real entrypoint (`es4ps-files run`) in namespaces of its own.

It is a domain member like es4ps_testkit.workstation's (its own network,
mount and UTS namespaces, a veth address, the same private folders), plus
private folders for CUPS, joined by the entrypoint itself as its own computer
with the password the operator would keep in a Secret. Clients are this
machine's `smbclient` (`smbclient()` below), as registered people.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from es4ps_localcluster.processes import start_process, stop_process_group, wait_until

from . import ServiceError
from .samba import SambaDC
from .workstation import Workstation

_ENTRYPOINT = [sys.executable, "-m", "es4ps_samba.files.cli"]
# Inside the file server's namespaces: its volume and its mounted Secrets (in its private /var/lib/samba, /etc/samba).
_VOLUME = Path("/var/lib/samba/volume")
_SECRETS = Path("/etc/samba/es4ps")
# The DC's "Service" name the file server joins through, and a DNS server that never answers (TEST-NET-1).
JOIN_SERVICE = "dc0.directory.cluster.test"
SILENT_DNS = "192.0.2.53"
# The metrics port, and a walk of the volume every second: a test sees a write counted at once.
METRICS_PORT = 9935
USAGE_INTERVAL_S = 1


class FileServer(Workstation):
    """A Samba member file server of `dc`'s domain run by `es4ps-files run`; `shares` as ES4PS_FILES_SHARES."""

    # CUPS's folders, the file server's own (cupsd and cups-pdf use fixed paths).
    extra_private_dirs = ("etc/cups", "var/spool/cups", "var/cache/cups", "var/spool/cups-pdf")

    def __init__(
        self,
        directory: Path,
        dc: SambaDC,
        hostname: str = "files1",
        shares: str = "[]",
        homes: bool = True,
        printing: bool = True,
        homes_quota_bytes: int | None = None,
    ) -> None:
        super().__init__(directory, dc, hostname=hostname, client="winbind")
        self.shares = shares
        self.homes = homes
        self.printing = printing
        self.homes_quota_bytes = homes_quota_bytes
        self.machine_password = "Mch-" + secrets.token_urlsafe(18)
        self.server_log = directory / "files.log"
        self._server: subprocess.Popen | None = None

    def _write_files(self) -> None:
        super()._write_files()
        # As in a Pod: the join server is a name the cluster's DNS gives (here /etc/hosts), and the Pod's DNS
        # knows nothing of the realm (here an address nobody answers at, a second per question): the entrypoint's
        # own resolver sends the realm to the DC it joins through.
        (self.root / "etc/hosts").write_text(
            f"127.0.0.1 localhost\n{self.address} {self.fqdn} {self.hostname}\n{self.dc.address} {JOIN_SERVICE}\n"
        )
        (self.root / "etc/resolv.conf").write_text(f"nameserver {SILENT_DNS}\noptions timeout:1 attempts:1\n")

    @property
    def data_dir(self) -> Path:
        """The file server's volume, seen from this machine (its /var/lib/samba/volume)."""
        return self.root / _VOLUME.relative_to("/")

    @property
    def env(self) -> dict[str, str]:
        """The variables the operator gives the file server's container (docs/interfaces.md); paths as the file
        server sees them (this machine's /tmp is not its /tmp)."""
        return {
            "ES4PS_REALM": self.dc.realm,
            "ES4PS_NETBIOS_NAME": self.dc.netbios_name,
            "ES4PS_FILES_HOSTNAME": self.hostname,
            "ES4PS_JOIN_SERVER": JOIN_SERVICE,
            "ES4PS_DATA_DIR": str(_VOLUME),
            "ES4PS_ADMIN_PASSWORD_FILE": str(_SECRETS / "admin-password"),
            "ES4PS_MACHINE_PASSWORD_FILE": str(_SECRETS / "machine-password"),
            "ES4PS_FILES_HOMES": str(self.homes).lower(),
            "ES4PS_FILES_HOMES_QUOTA_BYTES": str(self.homes_quota_bytes or ""),
            "ES4PS_FILES_SHARES": self.shares,
            "ES4PS_FILES_PRINTING": str(self.printing).lower(),
            "ES4PS_FILES_METRICS_PORT": str(METRICS_PORT),
            "ES4PS_FILES_USAGE_INTERVAL_SECONDS": str(USAGE_INTERVAL_S),
        }

    @property
    def metrics_url(self) -> str:
        """Prometheus' /metrics of the file server, at its own address."""
        return f"http://{self.address}:{METRICS_PORT}/metrics"

    def serve(self, timeout_s: float = 120) -> None:
        """Start `es4ps-files run` in the namespaces; return once `es4ps-files ready` says so."""
        assert self._holder is not None, "the file server is not started"
        # The mounted Secrets: the domain's Administrator password and the computer's own.
        secrets_dir = self.root / _SECRETS.relative_to("/")
        secrets_dir.mkdir(mode=0o700, exist_ok=True)
        for name, value in (("admin-password", self.dc.admin_password), ("machine-password", self.machine_password)):
            descriptor = os.open(secrets_dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as out:
                out.write(value + "\n")
        namespaces = ["nsenter", "-t", str(self._holder.pid), "--net", "--mount", "--uts"]
        environment = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", **self.env}
        self._server = start_process([*namespaces, *_ENTRYPOINT, "run"], self.server_log, environment)
        wait_until(
            lambda: self.run(*_ENTRYPOINT, "ready", env=self.env).returncode == 0,
            timeout_s,
            f"the file server {self.hostname}",
            self.server_log,
            self._server,
            interval_s=1,
            error=ServiceError,
        )

    def stop_server(self) -> None:
        stop_process_group(self._server)
        self._server = None

    def printed(self, username: str) -> list[Path]:
        """The PDFs the print share's printer made for the person (seen from this machine)."""
        folder = self.data_dir / "printed" / username
        return sorted(folder.glob("*.pdf")) if folder.is_dir() else []

    def close(self) -> None:
        self.stop_server()
        super().close()


def smbclient(
    server: FileServer, share: str, username: str, password: str, command: str, *options: str
) -> subprocess.CompletedProcess:
    """`smbclient //<server>/<share> -c <command>` from this machine as `username`, in the server's folder;
    `options`: more smbclient arguments."""
    return smbclient_at(
        server.address, server.dc.netbios_name, share, username, password, command, server.directory, *options
    )


def smbclient_at(
    address: str, workgroup: str, share: str, username: str, password: str, command: str, cwd: Path, *options: str
) -> subprocess.CompletedProcess:
    """`smbclient //<address>/<share> -c <command>` from this machine as `workgroup`\\`username` (NTLM; the
    password through the environment, never on the command line), run in `cwd`."""
    return subprocess.run(
        [
            "smbclient",
            f"//{address}/{share}",
            "--configfile=/dev/null",
            "--use-kerberos=off",
            "-W",
            workgroup,
            "-U",
            username,
            "-c",
            command,
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PASSWD": password},
        cwd=cwd,
    )
