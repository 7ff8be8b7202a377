"""An Active Directory the organisation already runs, outside any cluster: a plain Samba AD DC process.

Provisioned by samba-tool itself (not by the product's entrypoint: nothing of
ES4PS is in it until its administrator delegates an OU), and set as close to
a Microsoft AD's defaults as Samba allows: LDAPS with a certificate of the
organisation's CA, simple binds only over TLS (`ldap server require strong
auth`), the Default Domain Policy's password rules (complexity, 24 remembered
passwords, a minimum age of one day, 42 days maximum, 7 characters), RFC 2307
attributes in the schema. It takes a loopback address of its own, like the
test DCs (es4ps_testkit.samba).

`delegate(account, password, ou)` is what its administrator does for ES4PS:
a plain user, and the product's own delegation (`es4ps-samba-dc delegate`)
on the OU given to ES4PS.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from es4ps_localcluster.paths import VENV_BIN
from es4ps_localcluster.processes import start_process, stop_process_group, wait_until

from . import ServiceError
from .ca import CertFiles, ThrowawayCA
from .samba import TEST_DC_OPTIONS, claim_loopback_address, ldap_session
from .worker import DirectoryWorker

if TYPE_CHECKING:
    import pytest

    from .rabbitmq import RabbitMQ
    from .worker import ContractKeys

# What its administrator sets up for ES4PS (`delegated`): an OU of its own, the OU given to ES4PS below it,
# and the account the worker binds as.
PEOPLE_OU, DELEGATED_OU = "OU=People", "OU=Registered,OU=People"
SERVICE_ACCOUNT, SERVICE_PASSWORD = "svc-es4ps", "Svc-Passw0rd!long-enough"  # noqa: S105 - a test account's
# The Default Domain Policy of a new Microsoft AD forest (Windows Server 2016 to 2025).
MICROSOFT_DEFAULT_PASSWORD_SETTINGS = (
    "--complexity=on",
    "--history-length=24",
    "--min-pwd-age=1",
    "--max-pwd-age=42",
    "--min-pwd-length=7",
)


def _write_secret(path: Path, text: str) -> str:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text + "\n")
    return str(path)


class OutsideAD:
    """A running Samba AD DC of its own domain, reached over LDAPS at `ldaps_url` (its CA: `ca_file`)."""

    def __init__(self, directory: Path, ca: ThrowawayCA, realm: str = "CORP.EXAMPLE", netbios_name: str = "CORP"):
        self.directory = directory
        self.ca = ca
        self.realm = realm
        self.netbios_name = netbios_name
        self.hostname = "corpdc1"
        self.admin_password = "Adm-" + secrets.token_urlsafe(18)
        self.data_dir = directory / "data"
        self.log = directory / "samba.log"
        self.address = ""
        self.tls: CertFiles | None = None
        self._lock: int | None = None
        self._process: subprocess.Popen | None = None

    @property
    def base_dn(self) -> str:
        return ",".join(f"DC={label}" for label in self.realm.lower().split("."))

    @property
    def dns_domain(self) -> str:
        return self.realm.lower()

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.dns_domain}"

    @property
    def ldaps_url(self) -> str:
        """By its DNS name, which its certificate carries and a client checks (`hosts_file` resolves it)."""
        return f"ldaps://{self.fqdn}:636"

    @property
    def hosts_file(self) -> Path:
        return self.directory / "hosts"

    def with_hosts(self, command: list[str]) -> list[str]:
        """`command` run where the DC's DNS name resolves (a mount namespace whose /etc/hosts names it), as
        the organisation's DNS resolves it for the worker's Pod."""
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount --bind "$0" /etc/hosts && exec "$@"',
            str(self.hosts_file),
            *command,
        ]

    @property
    def ldap_url(self) -> str:
        return f"ldap://{self.address}"

    @property
    def ca_file(self) -> Path:
        return self.ca.ca_file

    @property
    def smb_conf(self) -> Path:
        return self.data_dir / "etc" / "smb.conf"

    def _samba_tool(self, *args: str) -> None:
        result = subprocess.run(
            ["samba-tool", *args], capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""}
        )
        if result.returncode != 0:
            raise ServiceError(f"samba-tool {args[0]} {args[1]}: {(result.stderr or result.stdout)[-500:]}")

    def _provision(self) -> None:
        assert self.tls is not None
        options = {
            "interfaces": f"{self.address}/8",
            "bind interfaces only": "yes",
            "tls enabled": "yes",
            "tls certfile": str(self.tls.cert_file),
            "tls keyfile": str(self.tls.key_file),
            "tls cafile": str(self.tls.ca_file),
            # Microsoft AD refuses simple binds without TLS once LDAP signing is required (the hardened default).
            "ldap server require strong auth": "yes",
            **dict(line.split(" = ", 1) for line in TEST_DC_OPTIONS.splitlines()),
        }
        self._samba_tool(
            "domain",
            "provision",
            f"--targetdir={self.data_dir}",
            f"--realm={self.realm}",
            f"--domain={self.netbios_name}",
            f"--host-name={self.hostname}",
            f"--host-ip={self.address}",
            "--server-role=dc",
            "--dns-backend=SAMBA_INTERNAL",
            "--use-rfc2307",
            f"--adminpass={self.admin_password}",
            *(f"--option={name}={value}" for name, value in options.items()),
        )
        sam = f"tdb://{self.data_dir / 'private' / 'sam.ldb'}"
        self._samba_tool("domain", "passwordsettings", "set", f"-H{sam}", *MICROSOFT_DEFAULT_PASSWORD_SETTINGS)

    def start(self, timeout_s: float = 120) -> None:
        """Provision on the first start, then run samba (in a mount namespace of its own) until LDAPS answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.address:
            self.address, self._lock = claim_loopback_address()
            self.tls = self.ca.issue(f"outside-{self.address}", self.fqdn, server_names=(self.fqdn, self.address))
            self.hosts_file.write_text(f"127.0.0.1 localhost\n{self.address} {self.fqdn} {self.hostname}\n")
            self._provision()
        private = 'mkdir -p "$0" && mount --bind "$0" /run/samba && exec "$@"'
        self._process = start_process(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                private,
                str(self.directory / "run-samba"),
                "samba",
                "--interactive",
                f"--configfile={self.smb_conf}",
            ],
            self.log,
        )
        try:
            wait_until(
                self._answers, timeout_s, f"outside AD on {self.address}", self.log, self._process, error=ServiceError
            )
        except ServiceError:
            self.stop()
            raise

    def _answers(self) -> bool:
        try:
            session = ldap_session(self, "Administrator", self.admin_password)
            return bool(session.bind())
        except Exception:  # noqa: BLE001 - not up yet, whatever the reason
            return False

    def stop(self) -> None:
        """Stop samba (the domain stays: `start` runs it again)."""
        stop_process_group(self._process)
        self._process = None

    def close(self) -> None:
        self.stop()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def samdb(self, username: str = "Administrator", password: str | None = None):
        """A SamDB connection (LDAP with SASL sealing, on loopback), as the Administrator unless told otherwise:
        the tests' own look at the directory."""
        from es4ps_samba.samdb import open_remote_samdb

        password = self.admin_password if password is None else password
        return open_remote_samdb(self.ldap_url, self.realm, self.netbios_name, username, password)

    def add_user(self, username: str, password: str, ou: str = "CN=Users") -> None:
        """An ordinary enabled account, as the directory's staff make them (outside ES4PS's OU by default)."""
        samdb = self.samdb()
        samdb.newuser(username, password, userou=ou, setpassword=True)
        samdb.setexpiry(f"(sAMAccountName={username})", 0, no_expiry_req=True)

    def prepare_for_es4ps(self) -> None:
        """What the organisation does for ES4PS: its OU of people, the worker's account, the delegation."""
        self.samdb().add({"dn": f"{PEOPLE_OU},{self.base_dn}", "objectClass": "organizationalUnit"})
        self.add_user(SERVICE_ACCOUNT, SERVICE_PASSWORD)
        delegated = self.delegate(SERVICE_ACCOUNT, DELEGATED_OU)
        if delegated.returncode != 0:
            raise ServiceError(f"es4ps-samba-dc delegate failed: {delegated.stderr[-500:]}")

    def delegate(self, account: str, ou: str) -> subprocess.CompletedProcess:
        """The administrator's delegation for ES4PS: `es4ps-samba-dc delegate` as the Administrator."""
        password_file = _write_secret(self.directory / "admin-password", self.admin_password)
        return subprocess.run(
            self.with_hosts([str(VENV_BIN / "es4ps-samba-dc"), "delegate"]),
            env={
                **os.environ,
                "ES4PS_LDAP_URL": self.ldaps_url,
                "ES4PS_LDAP_CA_FILE": str(self.ca_file),
                "ES4PS_REALM": self.realm,
                "ES4PS_NETBIOS_NAME": self.netbios_name,
                "ES4PS_ADMIN_ACCOUNT": "Administrator",
                "ES4PS_ADMIN_PASSWORD_FILE": password_file,
                "ES4PS_WORKER_ACCOUNT": account,
                "ES4PS_USERS_OU": ou,
            },
            capture_output=True,
            text=True,
            timeout=120,
        )


def external_env(
    outside_ad: OutsideAD,
    broker: RabbitMQ,
    keys: ContractKeys,
    tmp_path_factory: pytest.TempPathFactory,
    account: str = SERVICE_ACCOUNT,
    password: str = SERVICE_PASSWORD,
    name: str = DirectoryWorker.DEFAULT_NAME,
) -> dict[str, str]:
    """What the operator gives the external worker (builders/external.py): the directory's URL, CA, account, OU;
    a state volume; the result key of a worker called `name` (start it with that name)."""
    secrets_dir = tmp_path_factory.mktemp("external-secrets")
    (secrets_dir / "state").mkdir(mode=0o700)  # the worker's own volume, mounted there in its Pod
    return {
        **broker.worker_env,
        **keys.worker_env,
        **keys.result_env(name),
        "ES4PS_LDAP_URL": outside_ad.ldaps_url,
        "ES4PS_LDAP_CA_FILE": str(outside_ad.ca_file),
        "ES4PS_REALM": outside_ad.realm,
        "ES4PS_NETBIOS_NAME": outside_ad.netbios_name,
        "ES4PS_WORKER_ACCOUNT": account,
        "ES4PS_WORKER_PASSWORD_FILE": _write_secret(secrets_dir / "password", password),
        "ES4PS_USERS_OU": DELEGATED_OU,
        "ES4PS_WORKER_STATE_DIR": str(secrets_dir / "state"),
        # One retry for a missing account: a task waiting for the directory must outlive it.
        "ES4PS_WORKER_MAX_RETRIES": "1",
    }
