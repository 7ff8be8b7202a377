"""Real services for tests and benchmarks: a throwaway CA, RabbitMQ with mutual TLS, a Samba AD DC, the worker.

Plain classes without pytest, so `bench/` can start the same services; the
pytest fixtures around them live in `service_fixtures.py`. Every service runs
as a local process under its own directory, on ports (and, for Samba, a
loopback address) picked per session, so two test sessions can run at once.
A service that does not come up raises ServiceError with the tail of its log.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from es4ps_contract.keys import generate_sealing_keypair, generate_signing_keypair
from es4ps_contract.tasks import RESULTS_QUEUE
from es4ps_operator.builders.broker import broker_definitions, rabbitmq_conf  # as the operator writes them
from es4ps_operator.naming import BROKER_VHOST
from es4ps_operator.naming import PORTAL_BROKER_USER as PORTAL_USER
from es4ps_operator.naming import WORKER_BROKER_USER as WORKER_USER

VENV_BIN = Path(sys.executable).parent
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
EPMD = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"


class ServiceError(RuntimeError):
    """A service did not start or stop as expected; the message carries the tail of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    log: Path | None = None,
    process: subprocess.Popen | None = None,
) -> None:
    """Poll `condition` until it holds; raise ServiceError naming `what` (with the log tail) if it does not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            raise ServiceError(f"{what}: the process exited with {process.returncode}\n{log_tail(log) if log else ''}")
        time.sleep(0.2)
    raise ServiceError(f"{what}: not ready after {timeout_s:.0f} s\n{log_tail(log) if log else ''}")


def start_process(command: list[str], log: Path, env: Mapping[str, str], cwd: Path | None = None) -> subprocess.Popen:
    """Start a command in its own process group with stdout and stderr appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )


def stop_process_group(process: subprocess.Popen | None, timeout_s: float = 15) -> None:
    """SIGTERM the process group of `process`, SIGKILL it if it lingers; no child is left behind."""
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout_s)
    # Children may outlive the leader: kill whatever is left in the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


# --------------------------------------------------------------------------- CA


@dataclass(frozen=True)
class CertFiles:
    """One issued certificate as a cert-manager Secret holds it: ca.crt, tls.crt, tls.key in one directory."""

    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def cert_file(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def key_file(self) -> Path:
        return self.directory / "tls.key"


class ThrowawayCA:
    """A certificate authority made for one test session (ECDSA P-256, valid one day)."""

    def __init__(self, directory: Path, name: str = "ES4PS test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.crt"
        self.ca_file.write_bytes(self._certificate.public_bytes(serialization.Encoding.PEM))

    def issue(
        self, name: str, common_name: str, *, server_names: tuple[str, ...] = (), client: bool = False
    ) -> CertFiles:
        """Issue a certificate into `<ca dir>/<name>/`: a server one for `server_names` (DNS names or IPs),
        a client one when `client` (the broker maps its common name to a user), or both."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server_names else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if server_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in server_names]), critical=False
            )
        certificate = builder.sign(self._key, hashes.SHA256())
        files = CertFiles(self.directory / name)
        files.directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.ca_file, files.ca_file)
        files.cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_bytes = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        descriptor = os.open(files.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(key_bytes)
        return files


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


# --------------------------------------------------------------------------- RabbitMQ


class RabbitMQ:
    """Debian's RabbitMQ as a private node: one TLS listener, client certificates required, EXTERNAL login."""

    def __init__(self, directory: Path, ca: ThrowawayCA) -> None:
        self.directory = directory
        self.ca = ca
        self.host = "127.0.0.1"
        self.port = 0
        self.node_name = f"es4ps-test-{os.getpid()}-{secrets.token_hex(3)}@localhost"
        self.log = directory / "rabbitmq.log"
        self.server_cert = ca.issue("rabbitmq-server", "rabbitmq", server_names=("localhost", "127.0.0.1"))
        self.client_certs = {user: ca.issue(f"broker-{user}", user, client=True) for user in (PORTAL_USER, WORKER_USER)}
        self._server: subprocess.Popen | None = None
        self._epmd: subprocess.Popen | None = None
        self._env: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"amqps://{self.host}:{self.port}/{BROKER_VHOST}"

    def env_for(self, user: str) -> dict[str, str]:
        """The ES4PS_BROKER_* variables of a component logging in as `user`."""
        certs = self.client_certs[user]
        return {
            "ES4PS_BROKER_URL": self.url,
            "ES4PS_BROKER_CA_FILE": str(certs.ca_file),
            "ES4PS_BROKER_CERT_FILE": str(certs.cert_file),
            "ES4PS_BROKER_KEY_FILE": str(certs.key_file),
            "ES4PS_BROKER_SERVER_NAME": "localhost",
        }

    @property
    def portal_env(self) -> dict[str, str]:
        return self.env_for(PORTAL_USER)

    @property
    def worker_env(self) -> dict[str, str]:
        return self.env_for(WORKER_USER)

    def _write_config(self) -> None:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        (d / "definitions.json").write_text(json.dumps(broker_definitions(), indent=1))
        (d / "enabled_plugins").write_text("[rabbitmq_auth_mechanism_ssl].\n")
        (d / "rabbitmq-env.conf").write_text("")
        # The operator's configuration, with this node's port, files and logging.
        (d / "rabbitmq.conf").write_text(
            rabbitmq_conf(
                listener=f"{self.host}:{self.port}",
                tls_dir=str(self.server_cert.directory),
                definitions_file=str(d / "definitions.json"),
                extra={
                    "log.console": "false",
                    "log.file.level": "info",
                    # The test machine's disk may be fuller than RabbitMQ's default alarm allows.
                    "disk_free_limit.absolute": "50MB",
                },
            )
        )

    def start(self, timeout_s: float = 60) -> None:
        """Start the node (or restart it on its old port, keeping its queues) and wait until a client logs in."""
        first_start = not self.port
        if first_start:
            self.port = free_port()
            epmd_port = free_port()
            dist_port = free_port()
            self._write_config()
            d = self.directory
            self._env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(d),
                "LANG": "C.UTF-8",
                "ERL_EPMD_PORT": str(epmd_port),
                "RABBITMQ_NODENAME": self.node_name,
                "RABBITMQ_DIST_PORT": str(dist_port),
                "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
                "RABBITMQ_LOG_BASE": str(d / "log"),
                "RABBITMQ_LOGS": str(d / "log" / "node.log"),
                "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
            }
        # Our own epmd in the foreground, so stopping the broker stops it too (a daemonised one would linger).
        self._epmd = start_process([EPMD, "-port", self._env["ERL_EPMD_PORT"]], self.directory / "epmd.log", self._env)
        self._server = start_process([RABBITMQ_SERVER], self.log, self._env, cwd=self.directory)
        try:
            wait_until(self._client_logs_in, timeout_s, "RabbitMQ", self.directory / "log" / "node.log", self._server)
        except ServiceError:
            self.stop()
            raise

    def _client_logs_in(self) -> bool:
        from es4ps_contract.transport import celery_settings
        from kombu import Connection

        settings = celery_settings(self.portal_env)
        connection = Connection(self.url, login_method="EXTERNAL", ssl=settings["broker_use_ssl"], connect_timeout=2)
        try:
            connection.connect()
            return True
        except Exception:  # anything short of a login means "not yet"
            return False
        finally:
            connection.release()

    def stop(self) -> None:
        """Stop the node and its epmd; its data stays, so `start` brings the same queues back."""
        stop_process_group(self._server, timeout_s=30)
        stop_process_group(self._epmd)
        self._server = self._epmd = None

    def queue_depth(self, queue: str) -> int:
        """Messages ready in `queue` (a passive declare as the portal or worker)."""
        from es4ps_contract.transport import celery_settings
        from kombu import Connection

        user = PORTAL_USER if queue == RESULTS_QUEUE else WORKER_USER
        settings = celery_settings(self.env_for(user))
        with Connection(self.url, login_method="EXTERNAL", ssl=settings["broker_use_ssl"]) as connection:
            return connection.default_channel.queue_declare(queue, passive=True).message_count


# --------------------------------------------------------------------------- Samba AD DC

# Loopback addresses Samba test DCs may take, one per running session (a DC needs port 389 to itself).
_LOOPBACK_RANGE = range(10, 250)
_LOCK_DIR = Path("/tmp")


def claim_loopback_address() -> tuple[str, int]:
    """Pick 127.0.0.X that no other session holds; return it and the open lock file (keep it open)."""
    start = os.getpid() % len(_LOOPBACK_RANGE)
    for offset in range(len(_LOOPBACK_RANGE)):
        address = f"127.0.0.{_LOOPBACK_RANGE[(start + offset) % len(_LOOPBACK_RANGE)]}"
        descriptor = os.open(_LOCK_DIR / f"es4ps-loopback-{address}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        with socket.socket() as probe:
            try:
                probe.bind((address, 389))
            except OSError:
                os.close(descriptor)
                continue
        return address, descriptor
    raise ServiceError("no free loopback address for a Samba DC")


# Services that use host-wide names are off, so two sessions' DCs cannot meet: NetBIOS binds the
# loopback broadcast address, and dnsupdate would call nsupdate. smbd (sysvol, which an online
# backup copies) needs winbindd, whose socket is always /run/samba/winbindd for its clients: each
# test DC runs in its own mount namespace with a private /run/samba, as in its Pod.
TEST_DC_OPTIONS = "\n".join(
    [
        "server services = -nbt -dnsupdate",
        "disable netbios = yes",
        "prefork children = 2",
    ]
)


class SambaDC:
    """A Samba AD DC provisioned by the real entrypoint (`es4ps-samba-dc run`) into its own directory."""

    def __init__(
        self,
        directory: Path,
        ca: ThrowawayCA,
        realm: str = "ES4PS.TEST",
        netbios_name: str = "ES4PS",
        hostname: str = "dc1",
        extra_options: str = "",
        join: SambaDC | None = None,
    ) -> None:
        """`join`: a running DC of the domain to join as an additional DC (else a new domain is provisioned)."""
        self.directory = directory
        self.ca = ca
        self.realm = realm
        self.netbios_name = netbios_name
        self.hostname = hostname
        self.extra_options = extra_options
        self.join = join
        self.admin_password = join.admin_password if join else "Adm-" + secrets.token_urlsafe(18)
        self.admin_password_file = directory / "admin-password"
        self.worker_password = join.worker_password if join else "Wrk-" + secrets.token_urlsafe(18)
        self.worker_password_file = directory / "worker-password"
        self.data_dir = directory / "data"
        self.log = directory / "samba.log"
        self.address = ""
        self._lock: int | None = None
        self._process: subprocess.Popen | None = None
        self.tls: CertFiles | None = None

    @property
    def dns_domain(self) -> str:
        return self.realm.lower()

    @property
    def base_dn(self) -> str:
        return ",".join(f"DC={label}" for label in self.dns_domain.split("."))

    @property
    def ldap_url(self) -> str:
        return f"ldap://{self.address}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.address}:636"

    @property
    def ca_file(self) -> Path:
        return self.ca.ca_file

    @property
    def dc_env(self) -> dict[str, str]:
        """The variables `es4ps-samba-dc` runs with (docs/interfaces.md)."""
        assert self.tls is not None
        return {
            "ES4PS_REALM": self.realm,
            "ES4PS_NETBIOS_NAME": self.netbios_name,
            "ES4PS_DC_HOSTNAME": self.hostname,
            "ES4PS_HOST_IP": self.address,
            # "/8": Samba only accepts a loopback alias address together with its netmask.
            "ES4PS_INTERFACES": f"{self.address}/8",
            "ES4PS_DATA_DIR": str(self.data_dir),
            "ES4PS_ADMIN_PASSWORD_FILE": str(self.admin_password_file),
            "ES4PS_WORKER_PASSWORD_FILE": str(self.worker_password_file),
            "ES4PS_WORKER_UID": str(os.getuid()),
            "ES4PS_TLS_CERT_FILE": str(self.tls.cert_file),
            "ES4PS_TLS_KEY_FILE": str(self.tls.key_file),
            "ES4PS_TLS_CA_FILE": str(self.tls.ca_file),
            "ES4PS_DC_ROLE": "join" if self.join else "provision",
            "ES4PS_JOIN_SERVER": self.join.address if self.join else "",
            "ES4PS_SAMBA_OPTIONS": "\n".join(
                filter(
                    None,
                    [TEST_DC_OPTIONS, self.extra_options],
                )
            ),
            "ES4PS_TLS_CHECK_SECONDS": "1",
        }

    @property
    def worker_env(self) -> dict[str, str]:
        """The directory variables of a worker beside this DC: its own account, its state on the DC's volume."""
        return {
            "ES4PS_LDAP_URL": self.ldap_url,
            "ES4PS_REALM": self.realm,
            "ES4PS_NETBIOS_NAME": self.netbios_name,
            "ES4PS_WORKER_PASSWORD_FILE": str(self.worker_password_file),
            "ES4PS_WORKER_STATE_DIR": str(self.data_dir / "es4ps-worker"),
        }

    @property
    def portal_env(self) -> dict[str, str]:
        """The directory variables of the portal (login checks over LDAPS)."""
        return {"ES4PS_LDAP_URL": self.ldaps_url, "ES4PS_LDAP_CA_FILE": str(self.ca_file), "ES4PS_REALM": self.realm}

    def start(self, timeout_s: float = 90) -> None:
        """Provision on the first start, then run samba and wait until LDAP answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.address:
            self.address, self._lock = claim_loopback_address()
            fqdn = f"{self.hostname}.{self.dns_domain}"
            self.tls = self.ca.issue(f"samba-{self.hostname}-{self.address}", fqdn, server_names=(fqdn, self.address))
            for path, password in (
                (self.admin_password_file, self.admin_password),
                (self.worker_password_file, self.worker_password),
            ):
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(descriptor, "w") as out:
                    out.write(password + "\n")
        env = {**os.environ, **self.dc_env}
        private_run = ["sh", "-c", 'mkdir -p "$0" /run/samba && mount --bind "$0" /run/samba && exec "$@"']
        self._process = start_process(
            ["unshare", "--mount", "--propagation", "private", *private_run, str(self.directory / "run-samba"),
             str(VENV_BIN / "es4ps-samba-dc"), "run"],
            self.log,
            env,
        )
        try:
            wait_until(self.is_ready, timeout_s, f"Samba DC on {self.address}", self.log, self._process)
        except ServiceError:
            self.stop()
            raise

    def is_ready(self) -> bool:
        result = subprocess.run(
            [str(VENV_BIN / "es4ps-samba-dc"), "ready"],
            env={**os.environ, **self.dc_env},
            capture_output=True,
            timeout=30,
        )
        return result.returncode == 0

    @property
    def running(self) -> bool:
        """The entrypoint process started by `start` is still there."""
        return self._process is not None and self._process.poll() is None

    def _samba_groups(self) -> list[int]:
        """The entrypoint's process group and samba's own (samba leads one; its pid file names it)."""
        assert self._process is not None
        return [self._process.pid, int((self.data_dir / "run" / "samba.pid").read_text().split()[0])]

    def pause(self) -> None:
        """Freeze every samba process (SIGSTOP): requests hang as on an overloaded DC."""
        for group in self._samba_groups():
            os.killpg(group, signal.SIGSTOP)

    def resume(self) -> None:
        for group in self._samba_groups():
            os.killpg(group, signal.SIGCONT)

    def stop(self) -> None:
        """Stop samba (its data stays: `start` runs the same domain again)."""
        stop_process_group(self._process)
        self._process = None

    def close(self) -> None:
        """Stop and give the loopback address back."""
        self.stop()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def samdb(self, username: str = "Administrator", password: str | None = None):
        """A SamDB connection to this DC, as the Administrator unless told otherwise (for checks in tests)."""
        from samba.credentials import Credentials
        from samba.param import LoadParm
        from samba.samdb import SamDB

        lp = LoadParm()
        lp.load(str(self.data_dir / "etc" / "smb.conf"))
        credentials = Credentials()
        credentials.guess(lp)
        credentials.set_domain(self.netbios_name)
        credentials.set_username(username)
        credentials.set_password(self.admin_password if password is None else password)
        return SamDB(url=self.ldap_url, lp=lp, credentials=credentials)


# --------------------------------------------------------------------------- keys and the worker


class ContractKeys:
    """A fresh sealing and signing key pair per session, as the operator's Secrets would hold them."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        sealing_private, sealing_public = generate_sealing_keypair()
        signing_private, signing_public = generate_signing_keypair()
        self.files = {}
        for name, text in (
            ("sealing-private.key", sealing_private),
            ("sealing-public.key", sealing_public),
            ("signing-private.key", signing_private),
            ("signing-public.key", signing_public),
        ):
            path = directory / name
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as out:
                out.write(text + "\n")
            self.files[name] = path

    @property
    def portal_env(self) -> dict[str, str]:
        return {
            "ES4PS_SEALING_PUBLIC_KEY_FILE": str(self.files["sealing-public.key"]),
            "ES4PS_SIGNING_PRIVATE_KEY_FILE": str(self.files["signing-private.key"]),
        }

    @property
    def worker_env(self) -> dict[str, str]:
        return {
            "ES4PS_SEALING_PRIVATE_KEY_FILE": str(self.files["sealing-private.key"]),
            "ES4PS_SIGNING_PUBLIC_KEY_FILE": str(self.files["signing-public.key"]),
        }


class DirectoryWorker:
    """The real worker process (`es4ps-worker`, the image's command) with the given environment."""

    READY_LINE = "ready."

    def __init__(self, directory: Path, env: Mapping[str, str], name: str = "test-worker") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        # Few retries (1+2+4+8 s): a test waiting for "failed" should not wait ten minutes.
        self.env = {**os.environ, "ES4PS_WORKER_MAX_RETRIES": "4", **env, "ES4PS_WORKER_NAME": name}
        self.log = directory / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60) -> None:
        """Start the worker and wait until Celery reports it is consuming."""
        offset = self.log.stat().st_size if self.log.exists() else 0

        def consuming() -> bool:
            with self.log.open("rb") as log:
                log.seek(offset)
                return self.READY_LINE.encode() in log.read()

        self.process = start_process([str(VENV_BIN / "es4ps-worker")], self.log, self.env)
        try:
            wait_until(consuming, timeout_s, "es4ps-worker", self.log, self.process)
        except ServiceError:
            self.stop()
            raise

    def wait_for_log(self, text: str, timeout_s: float = 30) -> None:
        """Wait until the worker's log contains `text`."""
        wait_until(
            lambda: text in self.log.read_text(errors="replace"), timeout_s, f"worker log line {text!r}", self.log
        )

    def kill(self) -> None:
        """SIGKILL the whole worker (pool children too), as a crashed pod would end."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        stop_process_group(self.process, timeout_s=20)
        self.process = None
