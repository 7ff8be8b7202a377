"""A throwaway PostgreSQL server (Debian's `postgresql`) for one test session or benchmark.

initdb into a fresh directory, its own port on 127.0.0.1 and its own socket
directory, password (SCRAM) login over TCP as the portal would log in. PostgreSQL
refuses to run as root: as root, the server runs as the `postgres` user that
Debian's package creates, with its data in a directory of its own under /tmp
(a test's tmp_path is not reachable for that user).

    server = PostgreSQL(tmp_path / "postgres")
    server.start()
    url = server.create_database("portal")    # postgresql://...: ES4PS_DATABASE_URL
    ...
    server.close()                              # stop() alone keeps the data for another start()
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from es4ps_localcluster.processes import free_port, start_process, stop_process_group, wait_until

from . import ServiceError

POSTGRES_LIB = Path("/usr/lib/postgresql")
ADMIN_USER = "es4ps"
RUN_AS = "postgres"  # the user Debian's package creates, for runs as root


def postgres_bin() -> Path:
    """The bin directory of the newest PostgreSQL Debian installed."""
    versions = sorted((p for p in POSTGRES_LIB.glob("*/bin") if (p / "postgres").exists()), key=_version)
    if not versions:
        raise ServiceError(f"no PostgreSQL under {POSTGRES_LIB}: install Debian's postgresql (hack/setup-apt.sh)")
    return versions[-1]


def _version(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name))


class PostgreSQL:
    """A private PostgreSQL server: its own data directory, port and socket directory; stopped by `stop`."""

    def __init__(
        self,
        directory: Path,
        settings: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        clients: tuple[str, ...] = (),
    ) -> None:
        """`settings`: extra server settings (`-c name=value`), e.g. {"max_connections": "200"}; `host`: the
        address it listens on; `clients`: networks besides this machine that may log in (with the password)."""
        self.directory = directory
        self.settings = settings or {}
        self.host = host
        self.clients = clients
        self.port = 0
        self.password = "Pg-" + secrets.token_urlsafe(18)
        self.log = directory / "postgres.log"
        self.bin = postgres_bin()
        self.data_root: Path | None = None
        self._server: subprocess.Popen | None = None

    @property
    def data_dir(self) -> Path:
        assert self.data_root is not None
        return self.data_root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.data_root is not None
        return self.data_root / "run"

    def url(self, database: str = "postgres") -> str:
        """A database URL for `database` (the form ES4PS_DATABASE_URL takes)."""
        return f"postgresql://{ADMIN_USER}:{self.password}@{self.host}:{self.port}/{database}"

    def _as_server_user(self, command: list[str]) -> list[str]:
        if os.getuid() != 0:
            return command
        return ["setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--init-groups", "--", *command]

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(self._as_server_user(command), capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise ServiceError(f"{Path(command[0]).name} failed: {result.stderr[-2000:]}")

    def start(self, timeout_s: float = 60) -> None:
        """initdb on the first start, then run the server and wait until it takes logins."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.data_root is None:
            self.data_root = Path(tempfile.mkdtemp(prefix="es4ps-postgres-"))
            self.socket_dir.mkdir()
            password_file = self.data_root / "password"
            password_file.write_text(self.password + "\n")
            if os.getuid() == 0:
                server_user = pwd.getpwnam(RUN_AS)
                for path in (self.data_root, self.socket_dir, password_file):
                    os.chown(path, server_user.pw_uid, server_user.pw_gid)
            self._run(
                [
                    str(self.bin / "initdb"),
                    f"--pgdata={self.data_dir}",
                    f"--username={ADMIN_USER}",
                    f"--pwfile={password_file}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            )
            password_file.unlink()
            with (self.data_dir / "pg_hba.conf").open("a") as hba:
                hba.writelines(f"host all all {network} scram-sha-256\n" for network in self.clients)
        self.port = self.port or free_port()
        options = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            **self.settings,
        }
        command = [str(self.bin / "postgres"), "-D", str(self.data_dir)]
        for name, value in options.items():
            command += ["-c", f"{name}={value}"]
        self._server = start_process(self._as_server_user(command), self.log, {"LANG": "C.UTF-8", "PATH": "/usr/bin"})
        wait_until(self.is_ready, timeout_s, "PostgreSQL", self.log, self._server, error=ServiceError)

    def is_ready(self) -> bool:
        result = subprocess.run(
            [str(self.bin / "pg_isready"), "-h", self.host, "-p", str(self.port), "-U", ADMIN_USER, "-q"],
            capture_output=True,
        )
        return result.returncode == 0

    def connect(self, database: str = "postgres"):
        """A psycopg connection as the server's administrator (autocommit)."""
        import psycopg

        return psycopg.connect(self.url(database), autocommit=True)

    def create_database(self, name: str) -> str:
        """Create an empty database `name` (dropped first if it exists); return its URL."""
        from psycopg import sql

        with self.connect() as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended); its data stays for `start`."""
        if self._server is not None and self._server.poll() is None:
            subprocess.run(
                self._as_server_user([str(self.bin / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast"]),
                capture_output=True,
                timeout=60,
            )
        stop_process_group(self._server)
        self._server = None

    def close(self) -> None:
        """Stop the server and delete its data."""
        self.stop()
        if self.data_root is not None:
            shutil.rmtree(self.data_root, ignore_errors=True)
            self.data_root = None
