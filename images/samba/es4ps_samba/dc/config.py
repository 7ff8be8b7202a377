"""The DC's settings: the variables the operator sets (docs/interfaces.md), read and checked once."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from es4ps_contract.directory import MANAGED_OU, WORKER_ACCOUNT
from es4ps_contract.environment import Environment, SettingError, Variable
from es4ps_contract.passwords import InvalidPolicy, PasswordPolicy

from .store import MIN_VOLUME_BYTES, map_size_for_volume, volume_size

# Written after a successful provision, join or restore; its absence means "start over".
MARKER_NAME = ".es4ps-domain-ready"
# Where the worker keeps what must survive it (the record of applied tasks), inside the DC's volume.
WORKER_STATE_NAME = "es4ps-worker"
# The worker image's unprivileged user (images/samba/Dockerfile).
DEFAULT_WORKER_UID = 10001


VARIABLES = (
    Variable("ES4PS_REALM", "the realm, e.g. `AD.ACME.EXAMPLE`"),
    Variable("ES4PS_NETBIOS_NAME", "the domain's NetBIOS name (empty: the realm's first label)", ""),
    Variable("ES4PS_DC_HOSTNAME", "this DC's host name, e.g. `dc0` (at most 15 characters)"),
    Variable("ES4PS_HOST_IP", "the address the DC advertises in its DNS zone and binds", ""),
    Variable("ES4PS_INTERFACES", "what Samba binds (empty: `127.0.0.1/8` and `ES4PS_HOST_IP`, never all of `lo`)", ""),
    Variable("ES4PS_DNS_FORWARDER", "upstream DNS server for names outside the realm", ""),
    Variable("ES4PS_DATA_DIR", "everything the DC writes (the volume)", "/var/lib/samba"),
    Variable(
        "ES4PS_DATA_VOLUME_BYTES",
        "the size asked for that volume, in bytes (from `spec.directory.storage.size`); each directory "
        "partition's LMDB map size is 3/4 of the volume (this or the mounted file system, the larger), set at "
        "provision or join and raised when the volume grew (empty and no mount: Samba's default, 8 GiB)",
        "",
    ),
    Variable("ES4PS_ADMIN_PASSWORD_FILE", "the domain Administrator's password", secret_file=True),
    Variable("ES4PS_TLS_CERT_FILE", "LDAPS certificate (cert-manager's `tls.crt`)", ""),
    Variable("ES4PS_TLS_KEY_FILE", "its key (`tls.key`)", ""),
    Variable("ES4PS_TLS_CA_FILE", "its CA (`ca.crt`)", ""),
    Variable("ES4PS_TLS_CHECK_SECONDS", "how often `run` looks for a renewed certificate", "60"),
    Variable("ES4PS_DC_ROLE", "`provision` (the first DC) or `join` (another DC of the domain)", "provision"),
    Variable("ES4PS_JOIN_SERVER", "for `join`: the address of a running DC of the domain", ""),
    Variable(
        "ES4PS_PEER_ADDRESS_TEMPLATE",
        "the DNS name of DC number {index}'s own address outside the domain's zone (its Service), e.g. "
        "`acme-dc{index}.ns.svc.cluster.local`: a DC that moved is written into the zone at its new address "
        "(es4ps_samba.dc.peers); empty: only this DC's own record is kept current",
        "",
    ),
    Variable(
        "ES4PS_SAMBA_OPTIONS",
        "extra smb.conf `[global]` options, one `name = value` per line, applied on every start (they win)",
        "",
    ),
    Variable("ES4PS_USERS_OU", "the OU whose accounts the worker manages, relative to the domain", MANAGED_OU),
    Variable("ES4PS_WORKER_ACCOUNT", "the directory account the worker binds as", WORKER_ACCOUNT),
    Variable("ES4PS_WORKER_PASSWORD_FILE", "its password (the DC creates the account with it)", secret_file=True),
    Variable("ES4PS_WORKER_UID", "the worker's user id: owner of its state directory on the volume", "10001"),
    Variable(
        "ES4PS_HEALTH_PORT",
        "port of the health endpoint (replication, metrics): HTTPS on the DC's address for a client certificate of"
        " the CA named `ES4PS_HEALTH_CLIENT`, or without a certificate plain HTTP on 127.0.0.1; 0: off",
        "9931",
    ),
    Variable(
        "ES4PS_HEALTH_CLIENT",
        "the common name a client certificate (of the CA in `ES4PS_TLS_CA_FILE`) must have to read the health endpoint",
        "monitoring",
    ),
    Variable(
        "ES4PS_WORKER_METRICS_URL",
        "the worker's metrics on this host (e.g. `http://127.0.0.1:9932/metrics`), passed on at `/worker-metrics`",
        "",
    ),
    Variable(
        "ES4PS_HEALTH_INTERVAL_SECONDS",
        "how often the health endpoint's numbers are renewed (at most 15 s while a replication link or check fails)",
        "60",
    ),
    Variable(
        "ES4PS_DOMAIN_SETTINGS",
        "`apply`: this DC writes the domain-wide settings on every start, where they differ (the password policy"
        " of `ES4PS_PASSWORD_POLICY`, `ms-DS-MachineAccountQuota` 0); `when-only-ours`: only once every DC of the"
        " domain is one of this domain's (a domain that joined an existing one, after its old DCs were demoted;"
        " until then the existing domain's settings stay as they are)",
        "apply",
    ),
    Variable(
        "ES4PS_PASSWORD_POLICY",
        "JSON as `spec.directory.passwordPolicy`: applied to the domain on every start, where it differs (with"
        " `ES4PS_DOMAIN_SETTINGS` `apply`); empty: the domain's policy is left as it is",
        "",
    ),
)


@dataclass(frozen=True)
class DCConfig:
    """The DC's settings, read from the environment by `from_env`."""

    realm: str
    netbios_name: str
    hostname: str
    data_dir: Path
    admin_password_file: Path
    worker_password_file: Path
    host_ip: str = ""
    interfaces: str = ""
    dns_forwarder: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_ca_file: str = ""
    role: str = "provision"
    join_server: str = ""
    peer_address_template: str = ""
    # Extra smb.conf [global] options ("name = value" per line), applied on every start.
    extra_options: str = ""
    # How often `run` looks for a renewed certificate in the mounted files.
    tls_check_seconds: float = 60.0
    users_ou: str = MANAGED_OU
    worker_account: str = WORKER_ACCOUNT
    worker_uid: int = DEFAULT_WORKER_UID
    health_port: int = 9931
    # The common name of the one client certificate the health endpoint answers (es4ps_samba.dc.endpoint).
    health_client: str = "monitoring"
    worker_metrics_url: str = ""
    health_interval_seconds: float = 60.0
    # The volume's size (None: not known); the LMDB map size follows from it (store.map_size_for_volume).
    data_volume_bytes: int | None = None
    # `apply` or `when-only-ours` (es4ps_samba.dc.peers.writes_domain_settings): the password policy and the
    # machine account quota.
    domain_settings: str = "apply"
    # None: this DC leaves the domain's password policy alone (another DC applies it).
    password_policy: PasswordPolicy | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DCConfig:
        """Read and check the ES4PS_* variables of the DC."""
        env = Environment(VARIABLES, environ)
        realm = env.text("ES4PS_REALM").upper()
        config = cls(
            realm=realm,
            netbios_name=env.text("ES4PS_NETBIOS_NAME").upper() or realm.split(".")[0],
            hostname=env.text("ES4PS_DC_HOSTNAME").lower(),
            data_dir=Path(env.text("ES4PS_DATA_DIR")),
            admin_password_file=Path(env.text("ES4PS_ADMIN_PASSWORD_FILE")),
            worker_password_file=Path(env.text("ES4PS_WORKER_PASSWORD_FILE")),
            host_ip=env.text("ES4PS_HOST_IP"),
            interfaces=env.text("ES4PS_INTERFACES"),
            dns_forwarder=env.text("ES4PS_DNS_FORWARDER"),
            tls_cert_file=env.text("ES4PS_TLS_CERT_FILE"),
            tls_key_file=env.text("ES4PS_TLS_KEY_FILE"),
            tls_ca_file=env.text("ES4PS_TLS_CA_FILE"),
            role=env.choice("ES4PS_DC_ROLE", ("provision", "join")),
            join_server=env.text("ES4PS_JOIN_SERVER"),
            peer_address_template=env.text("ES4PS_PEER_ADDRESS_TEMPLATE"),
            extra_options=env.raw("ES4PS_SAMBA_OPTIONS"),
            tls_check_seconds=env.number("ES4PS_TLS_CHECK_SECONDS", minimum=0.001, maximum=86400),
            users_ou=env.text("ES4PS_USERS_OU"),
            worker_account=env.text("ES4PS_WORKER_ACCOUNT"),
            worker_uid=env.integer("ES4PS_WORKER_UID", minimum=0),
            health_port=env.integer("ES4PS_HEALTH_PORT", minimum=0, maximum=65535),
            health_client=env.text("ES4PS_HEALTH_CLIENT"),
            worker_metrics_url=env.text("ES4PS_WORKER_METRICS_URL"),
            health_interval_seconds=env.number("ES4PS_HEALTH_INTERVAL_SECONDS", minimum=1, maximum=86400),
            data_volume_bytes=(
                env.integer("ES4PS_DATA_VOLUME_BYTES", minimum=MIN_VOLUME_BYTES)
                if env.text("ES4PS_DATA_VOLUME_BYTES")
                else None
            ),
            domain_settings=env.choice("ES4PS_DOMAIN_SETTINGS", ("apply", "when-only-ours")),
            password_policy=_password_policy(env.raw("ES4PS_PASSWORD_POLICY")),
        )
        config.check()
        return config

    def check(self) -> None:
        """Refuse settings samba-tool would choke on later, with a message naming the variable."""
        if len(self.netbios_name) > 15:
            raise SettingError("ES4PS_NETBIOS_NAME must be at most 15 characters")
        if len(self.hostname) > 15:
            raise SettingError("ES4PS_DC_HOSTNAME must be at most 15 characters (it is the DC's NetBIOS name)")
        if self.role == "join" and not self.join_server:
            raise SettingError("ES4PS_JOIN_SERVER is required when ES4PS_DC_ROLE is 'join'")
        if self.peer_address_template and "{index}" not in self.peer_address_template:
            raise SettingError("ES4PS_PEER_ADDRESS_TEMPLATE must hold {index}, e.g. acme-dc{index}.ns.svc")
        if self.host_ip:
            try:
                ipaddress.ip_address(self.host_ip)
            except ValueError:
                raise SettingError("ES4PS_HOST_IP must be an IP address") from None
        tls = [self.tls_cert_file, self.tls_key_file, self.tls_ca_file]
        if any(tls) and not all(tls):
            raise SettingError("set all of ES4PS_TLS_CERT_FILE, ES4PS_TLS_KEY_FILE and ES4PS_TLS_CA_FILE, or none")
        if not self.users_ou.upper().startswith("OU=") or "," in self.users_ou:
            raise SettingError("ES4PS_USERS_OU must be one OU directly under the domain, e.g. OU=ES4PS")
        parse_options(self.extra_options)

    @property
    def smb_conf(self) -> Path:
        return self.data_dir / "etc" / "smb.conf"

    @property
    def sam_ldb(self) -> Path:
        return self.data_dir / "private" / "sam.ldb"

    @property
    def installed_tls_files(self) -> tuple[Path, Path, Path]:
        """(certificate, key, CA) as es4ps_samba.dc.tls installs them: what Samba and the health endpoint serve."""
        tls_dir = self.data_dir / "private" / "tls"
        return tls_dir / "es4ps-cert.pem", tls_dir / "es4ps-key.pem", tls_dir / "es4ps-ca.pem"

    @property
    def map_size(self) -> int:
        """The LMDB map size of each partition, from the volume's size."""
        return map_size_for_volume(volume_size(self.data_dir, self.data_volume_bytes))

    @property
    def run_dir(self) -> Path:
        """Runtime state (pid files, sockets): cleared on every start, so stale pid files never block samba."""
        return self.data_dir / "run"

    @property
    def marker(self) -> Path:
        return self.data_dir / MARKER_NAME

    @property
    def samba_version_marker(self) -> Path:
        """The Samba version that last ran on this volume (a new one checks the database first)."""
        return self.data_dir / ".es4ps-samba-version"

    @property
    def worker_state_dir(self) -> Path:
        return self.data_dir / WORKER_STATE_NAME

    @property
    def bind_interfaces(self) -> str:
        """What Samba listens on: ES4PS_INTERFACES, else 127.0.0.1 plus the advertised address.

        Not the interface `lo`: on a host network it also carries other services'
        addresses (a node-local DNS cache, say), whose ports Samba must leave alone.
        """
        return self.interfaces or " ".join(filter(None, ["127.0.0.1/8", self.host_ip]))

    @property
    def probe_address(self) -> str:
        """Where the probes reach LDAP: the advertised address, else loopback."""
        return self.host_ip or "127.0.0.1"

    def admin_password(self) -> str:
        return _secret(self.admin_password_file, "ES4PS_ADMIN_PASSWORD_FILE")

    def worker_password(self) -> str:
        return _secret(self.worker_password_file, "ES4PS_WORKER_PASSWORD_FILE")


def parse_options(text: str) -> dict[str, str]:
    """Parse "name = value" lines (blank lines and '#' comments ignored) into smb.conf options."""
    options = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise SettingError(f"ES4PS_SAMBA_OPTIONS: expected 'name = value', found {line[:80]!r}")
        options[name.strip().lower()] = value.strip()
    return options


def _password_policy(text: str) -> PasswordPolicy | None:
    if not text.strip():
        return None
    try:
        return PasswordPolicy.from_json(text, directory=True)
    except InvalidPolicy as exc:
        raise SettingError(str(exc)) from None


def _secret(path: Path, variable: str) -> str:
    try:
        password = path.read_text().rstrip("\r\n")
    except OSError as exc:
        raise SettingError(f"cannot read {variable}: {exc.strerror}") from None
    if not password:
        raise SettingError(f"{variable} is empty")
    return password
