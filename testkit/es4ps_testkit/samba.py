"""A Samba AD DC for one test session or benchmark, provisioned by the real entrypoint (`es4ps-samba-dc run`).

Each DC takes a loopback address of its own (127.0.0.X, held with a lock file),
since a DC needs port 389 to itself; checks read the directory's own answers.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Protocol

import ldap3
import ldb
from es4ps_contract.directory import MANAGED_OU
from es4ps_contract.passwords import PasswordPolicy
from es4ps_localcluster.paths import VENV_BIN
from es4ps_localcluster.processes import start_process, stop_process_group, wait_until

from . import ServiceError
from .ca import CertFiles, ThrowawayCA
from .claims import unclaimed
from .domains import default_password_policy


class RunningDC(Protocol):
    """A DC another one may join: its address and the domain Administrator's password."""

    address: str
    admin_password: str


# Loopback addresses Samba test DCs may take, one per running session (a DC needs port 389 to itself).
_LOOPBACK_RANGE = range(10, 250)


def environment_of_this_process() -> dict[str, str]:
    """This process's environment for a test DC's programs, without SMB_CONF_PATH: Samba's Python bindings set it
    once they loaded a DC's smb.conf (the session's), and samba-tool and samba would take that DC's folders."""
    return {name: value for name, value in os.environ.items() if name != "SMB_CONF_PATH"}


def claim_loopback_address() -> tuple[str, int]:
    """Pick 127.0.0.X that no other session holds; return it and the open lock file (keep it open)."""
    for address, descriptor in unclaimed([f"127.0.0.{host}" for host in _LOOPBACK_RANGE], "es4ps-loopback"):
        with socket.socket() as probe:
            try:
                probe.bind((address, 389))
            except OSError:
                os.close(descriptor)
                continue
        return address, descriptor
    raise ServiceError("no free loopback address for a Samba DC")


# NetBIOS is off: it binds the loopback broadcast address, so two sessions' DCs would meet. Each
# test DC runs in its own mount namespace, as in its Pod: a private /run/samba (smbd, serving the
# sysvol an online backup copies, needs winbindd, whose socket is always /run/samba/winbindd) and a
# resolv.conf naming the domain's first DC, where every DC registers itself (dnsupdate) and finds
# the others to replicate with.
TEST_DC_OPTIONS = "\n".join(
    [
        "server services = -nbt",
        # A DC pulls from a newly joined one once its KCC has made the connection and its replication
        # service comes round (Samba's defaults: every 5 minutes each); tests cannot wait that long.
        "kccsrv:periodic_interval = 15",
        "dreplsrv:periodic_interval = 15",
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
        join: RunningDC | None = None,
        volume_bytes: int | None = None,
        password_policy: PasswordPolicy | None = None,
        domain_settings: str = "apply",
        dns_forwarder: str = "",
    ) -> None:
        """`join`: a running DC of the domain to join as an additional DC (else a new domain is provisioned): one
        of ours, or an existing domain's (es4ps_testkit.legacy.LegacyDC), whose Administrator password the join takes.

        `volume_bytes`: the volume size the operator would announce (sets the database's map size).
        `password_policy`: what the DC applies to the domain; by default the CRD's default policy for a
        provisioning DC (as the operator gives dc0) and none for a joining one.
        `domain_settings`: ES4PS_DOMAIN_SETTINGS (`when-only-ours` for a DC joining an existing domain).
        `dns_forwarder`: where its DNS sends names outside the zone (ES4PS_DNS_FORWARDER; none by default).
        """
        self.directory = directory
        self.ca = ca
        self.realm = realm
        self.netbios_name = netbios_name
        self.hostname = hostname
        self.extra_options = extra_options
        self.join = join
        self.volume_bytes = volume_bytes
        self.dns_forwarder = dns_forwarder
        self.password_policy = password_policy if password_policy or join else default_password_policy()
        self.domain_settings = domain_settings
        self.admin_password = join.admin_password if join else "Adm-" + secrets.token_urlsafe(18)
        self.admin_password_file = directory / "admin-password"
        # The workers of one domain share their account; an existing domain's first joined DC makes it.
        joined_worker = join.worker_password if isinstance(join, SambaDC) else None
        self.worker_password = joined_worker or "Wrk-" + secrets.token_urlsafe(18)
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
    def sam_ldb(self) -> Path:
        return self.data_dir / "private" / "sam.ldb"

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
            "ES4PS_SAMBA_OPTIONS": "\n".join(filter(None, [TEST_DC_OPTIONS, self.extra_options])),
            "ES4PS_TLS_CHECK_SECONDS": "1",
            "ES4PS_DATA_VOLUME_BYTES": str(self.volume_bytes or ""),
            "ES4PS_PASSWORD_POLICY": self.password_policy.to_json(directory=True) if self.password_policy else "",
            "ES4PS_DOMAIN_SETTINGS": self.domain_settings,
            "ES4PS_DNS_FORWARDER": self.dns_forwarder,
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
        """The directory variables of the portal (login checks over LDAPS, the password policy its forms follow)."""
        return {
            "ES4PS_LDAP_URL": self.ldaps_url,
            "ES4PS_LDAP_CA_FILE": str(self.ca_file),
            "ES4PS_REALM": self.realm,
            "ES4PS_PASSWORD_POLICY": (self.password_policy or default_password_policy()).to_json(),
        }

    def write_password_files(self) -> None:
        """The Administrator's and the worker's passwords as the DC reads them (mounted Secrets, mode 600)."""
        for path, password in (
            (self.admin_password_file, self.admin_password),
            (self.worker_password_file, self.worker_password),
        ):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as out:
                out.write(password + "\n")

    @property
    def backup_env(self) -> dict[str, str]:
        """The directory variables of the backup Job's steps (es4ps_testkit.backups): dump-directory copies this DC."""
        return {
            "ES4PS_REALM": self.realm,
            "ES4PS_NETBIOS_NAME": self.netbios_name,
            "ES4PS_ADMIN_PASSWORD_FILE": str(self.admin_password_file),
            "ES4PS_BACKUP_SERVER": self.address,
        }

    def start(self, timeout_s: float = 90) -> None:
        """Provision on the first start, then run samba and wait until LDAP answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.address:
            self.address, self._lock = claim_loopback_address()
            fqdn = f"{self.hostname}.{self.dns_domain}"
            self.tls = self.ca.issue(f"samba-{self.hostname}-{self.address}", fqdn, server_names=(fqdn, self.address))
            self.write_password_files()
        env = {**environment_of_this_process(), **self.dc_env}
        # The domain's DNS is the first DC's: replication finds its partners by their DNS names there.
        resolv = self.directory / "resolv.conf"
        resolv.write_text(f"nameserver {(self.join or self).address}\n")
        private = 'mkdir -p "$0" /run/samba && mount --bind "$0" /run/samba && mount --bind "$1" /etc/resolv.conf'
        command = [str(VENV_BIN / "es4ps-samba-dc"), "run"]
        self._process = start_process(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                f'{private} && shift && exec "$@"',
                str(self.directory / "run-samba"),
                str(resolv),
                *command,
            ],
            self.log,
            env,
        )
        try:
            wait_until(
                self.is_ready, timeout_s, f"Samba DC on {self.address}", self.log, self._process, error=ServiceError
            )
            if self.join:
                self._register_in_domain_dns()
        except ServiceError:
            self.stop()
            raise

    def _register_in_domain_dns(self) -> None:
        """This DC's name and its replication name (its NTDS GUID under _msdcs) in the first DC's zone.

        A join registers them itself, but only for addresses that are not loopback ones, and test DCs
        live on 127.0.0.X: these are the records a join writes for a DC in a Pod. Idempotent.
        """
        assert self.join is not None
        guid = str(self.samdb().get_ntds_GUID())
        records = [
            (self.dns_domain, self.hostname, "A", self.address),
            (f"_msdcs.{self.dns_domain}", guid, "CNAME", f"{self.hostname}.{self.dns_domain}"),
        ]
        for zone, name, kind, data in records:
            result = self._administrator_tool("dns", "add", self.join.address, zone, name, kind, data)
            if result.returncode != 0 and "ALREADY_EXISTS" not in result.stderr + result.stdout:
                raise ServiceError(f"registering {name} in {zone} on {self.join.address}: {result.stderr[-300:]}")

    def _administrator_tool(self, *arguments: str) -> subprocess.CompletedProcess:
        """`samba-tool` as the domain's Administrator (the password in PASSWD, read by samba, never on argv)."""
        return subprocess.run(
            ["samba-tool", *arguments, f"--username={self.netbios_name}\\Administrator"],
            env={**environment_of_this_process(), "PASSWD": self.admin_password},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def inbound_replication(self, enabled: bool) -> None:
        """Let this DC pull its partners' changes, or not (`samba-tool drs options`, DISABLE_INBOUND_REPL)."""
        option = f"--dsa-option={'-' if enabled else '+'}DISABLE_INBOUND_REPL"
        result = self._administrator_tool("drs", "options", self.address, option)
        if result.returncode != 0:
            raise ServiceError(f"{option} on {self.hostname}: {(result.stderr or result.stdout)[-300:]}")

    def is_ready(self) -> bool:
        result = subprocess.run(
            [str(VENV_BIN / "es4ps-samba-dc"), "ready"],
            env={**environment_of_this_process(), **self.dc_env},
            capture_output=True,
            timeout=30,
        )
        return result.returncode == 0

    @property
    def running(self) -> bool:
        """The entrypoint process started by `start` is still there."""
        return self._process is not None and self._process.poll() is None

    def process_groups(self) -> list[int]:
        """The entrypoint's process group and samba's own (samba leads one; its pid file names it)."""
        assert self._process is not None
        return [self._process.pid, int((self.data_dir / "run" / "samba.pid").read_text().split()[0])]

    def pause(self) -> None:
        """Freeze every samba process (SIGSTOP): requests hang as on an overloaded DC."""
        for group in self.process_groups():
            os.killpg(group, signal.SIGSTOP)

    def resume(self) -> None:
        for group in self.process_groups():
            os.killpg(group, signal.SIGCONT)

    def stop(self) -> None:
        """Stop samba (its data stays: `start` runs the same domain again)."""
        stop_process_group(self._process)
        self._process = None

    def leave_domain(self) -> None:
        """Remove this stopped DC from its domain on the DC it joined (`samba-tool domain demote
        --remove-other-dead-server`), so that DC stops replicating with it."""
        assert self.join is not None and not self.running
        servers = self.join.samdb().search(
            self.join.samdb().get_config_basedn(), expression=f"(&(objectClass=server)(cn={self.hostname}))"
        )
        if not servers:
            return  # already removed (the test made it leave)
        result = self._administrator_tool(
            "domain", "demote", f"--remove-other-dead-server={self.hostname}", f"--server={self.join.address}"
        )
        if result.returncode != 0:
            raise ServiceError(f"removing {self.hostname} from the domain: {(result.stderr or result.stdout)[-300:]}")

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


def ldap_session(dc: SambaDC, username: str, password: str, address: str | None = None) -> ldap3.Connection:
    """An LDAPS connection as the user (the certificate checked against the test CA), not bound yet: what a
    person with their password, or an attacker with it, opens. `address`: another DC's, e.g. a joined one."""
    tls = ldap3.Tls(ca_certs_file=str(dc.ca_file), validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(address or dc.address, port=636, use_ssl=True, tls=tls, connect_timeout=5)
    return ldap3.Connection(server, user=f"{username}@{dc.dns_domain}", password=password)


def password_authenticates(dc: SambaDC, username: str, password: str, address: str | None = None) -> bool:
    """True when a simple bind as the user over LDAPS succeeds: the directory's own answer."""
    connection = ldap_session(dc, username, password, address)
    try:
        return connection.bind()
    finally:
        connection.unbind()


ACCOUNT_ATTRIBUTES = ["userAccountControl", "givenName", "sn", "displayName", "mail", "userPrincipalName"]


def find_account(dc: SambaDC, username: str, attrs: list[str] = ACCOUNT_ATTRIBUTES) -> ldb.Message | None:
    """The account named `username` anywhere in the domain, or None."""
    result = dc.samdb().search(
        base=dc.base_dn,
        scope=ldb.SCOPE_SUBTREE,
        expression=f"(sAMAccountName={ldb.binary_encode(username)})",
        attrs=attrs,
    )
    return result[0] if len(result) else None


def directory_account(dc: SambaDC, username: str) -> dict[str, str] | None:
    """The account's attributes in the DC (as the Administrator reads them) as text, or None."""
    account = find_account(dc, username)
    if account is None:
        return None
    return {str(name): str(account[name][0]) for name in account if name != "dn"}


def account_is_enabled(account: dict[str, str]) -> bool:
    from samba.dsdb import UF_ACCOUNTDISABLE

    return not int(account["userAccountControl"]) & UF_ACCOUNTDISABLE


def fill_accounts(dc: SambaDC, prefix: str, start: int, count: int, batch: int = 5000) -> None:
    """Add accounts `prefix{start}` .. `prefix{start + count - 1}` to the managed OU of the stopped DC.

    What the worker adds, less the password: disabled, with names, address and
    UPN. Written through the DC's own database modules (SIDs from its RID pool,
    replication metadata, indexes: as an LDAP add would), into its files
    directly, in batch mode with one transaction per `batch` accounts: about 3x
    the rate of LDAP adds here, which cannot be run in parallel into one DC
    anyway (its database has one writer at a time).
    """
    from samba.auth import system_session
    from samba.dsdb import UF_ACCOUNTDISABLE, UF_NORMAL_ACCOUNT
    from samba.param import LoadParm
    from samba.samdb import SamDB

    if dc.running:
        raise ServiceError("fill_accounts writes the DC's files: stop the DC first")
    lp = LoadParm()
    lp.load(str(dc.data_dir / "etc" / "smb.conf"))
    samdb = SamDB(url=str(dc.sam_ldb), session_info=system_session(), lp=lp, options=["batch_mode:1"])
    ou = f"{MANAGED_OU},{dc.base_dn}"  # the worker's OU (the test DCs keep the default)
    control = str(UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE)
    for first in range(start, start + count, batch):
        samdb.transaction_start()
        try:
            for i in range(first, min(first + batch, start + count)):
                name = f"{prefix}{i}"
                samdb.add(
                    {
                        "dn": f"CN={name},{ou}",
                        "objectClass": "user",
                        "sAMAccountName": name,
                        "userPrincipalName": f"{name}@{dc.dns_domain}",
                        "mail": f"{name}@fill.example",
                        "givenName": "Fill",
                        "sn": name,
                        "displayName": f"Fill {name}",
                        "userAccountControl": control,
                    }
                )
        except Exception:
            samdb.transaction_cancel()
            raise
        samdb.transaction_commit()
