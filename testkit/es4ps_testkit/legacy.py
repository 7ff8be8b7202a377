"""An ES4PS-Containers installation as the migration tests need it: its DC, its people, its portal's database.

ES4PS-Containers (the Docker Compose stack this project grew from) runs a
Samba AD DC container that `samba/provision_domain.sh` provisions once with
`samba-tool domain provision --server-role=dc --host-name=... --dns-backend=
SAMBA_INTERNAL --realm=... --domain=... --adminpass=... --use-rfc2307`, and a
Celery worker beside it that makes each account over `ldap://localhost` as
Administrator with `SamDB.newuser(username, password,
force_password_change_at_next_login_req=False, givenname=..., surname=...,
loginshell=..., unixhome=..., useusernameascn=True)` (so in CN=Users, named by
the username, with no `mail`), disables it at once, and enables it when the
portal's `CollegeUser` proves the address. Its Django portal (app `main`,
SQLite by default) keeps people in `main_collegeuser`.

`LegacyDC` is that DC as a plain process of this machine, provisioned and
filled the same way (the same samba-tool options and SamDB calls), on a
loopback address of its own or, for the real node's Pods to reach it, on an
address of this machine's `lo` outside the cluster's networks.
`legacy_portal_database` writes the portal's table as Django 5 creates it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from es4ps_localcluster.paths import VENV_BIN
from es4ps_localcluster.processes import port_open, start_process, stop_process_group, wait_until

from . import ServiceError
from .claims import unclaimed
from .samba import TEST_DC_OPTIONS, claim_loopback_address, environment_of_this_process

# Addresses Pods of the real node reach on this machine (on `lo`, outside the Pod, Service and node networks).
POD_REACHABLE_NETWORK = "10.249.0"
_POD_REACHABLE_HOSTS = range(10, 250)
# A loopback address nothing listens on: the legacy DC's DNS forwarder.
NO_RESOLVER = "127.255.255.254"


@dataclass(frozen=True)
class LegacyPerson:
    """One person of the old portal and their account in the old domain."""

    username: str
    email: str
    first_name: str
    last_name: str
    password: str
    verified: bool = True
    staff: bool = False
    active: bool = True
    # Made in the directory by the old worker; False: a row whose account is not in the directory.
    in_directory: bool = True
    joined: datetime.datetime = datetime.datetime(2024, 3, 1, 9, 30, tzinfo=datetime.UTC)


@contextlib.contextmanager
def migration_step(name: str):
    """Print how long a step of the migration runbook took (docs/migration.md's times; seen with pytest -s)."""
    start = time.monotonic()
    yield
    print(f"\nmigration step {name}: {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)


def claim_pod_reachable_address() -> tuple[str, int]:
    """An address on this machine's `lo` that the real node's Pods reach (10.249.0.X/32), held with a lock file."""
    addresses = [f"{POD_REACHABLE_NETWORK}.{host}" for host in _POD_REACHABLE_HOSTS]
    for address, descriptor in unclaimed(addresses, "es4ps-legacy"):
        # A crashed session may have left it on lo: taken over (the lock says nobody uses it).
        subprocess.run(["ip", "address", "replace", f"{address}/32", "dev", "lo"], check=True, capture_output=True)
        return address, descriptor
    raise ServiceError(f"no free address in {POD_REACHABLE_NETWORK}.0/24 for the legacy DC")


class LegacyDC:
    """ES4PS-Containers' Samba AD DC: provisioned by samba-tool as its container does, run as `samba -i`."""

    def __init__(
        self,
        directory: Path,
        realm: str = "DOM.LEGACY.TEST",
        netbios_name: str = "DOM",
        hostname: str = "es4alldc",
        pod_reachable: bool = False,
    ) -> None:
        """`pod_reachable`: on an address of `lo` the real node's Pods reach (else a loopback 127.0.0.X)."""
        self.directory = directory
        self.realm = realm.upper()
        self.netbios_name = netbios_name.upper()
        self.hostname = hostname
        self.pod_reachable = pod_reachable
        self.admin_password = "Legacy-" + secrets.token_urlsafe(12)
        self.admin_password_file = directory / "admin-password"
        self.target = directory / "samba"
        self.log = directory / "samba.log"
        self.address = ""
        self._lock: int | None = None
        self._process: subprocess.Popen | None = None

    @property
    def dns_domain(self) -> str:
        return self.realm.lower()

    @property
    def base_dn(self) -> str:
        return ",".join(f"DC={label}" for label in self.dns_domain.split("."))

    @property
    def smb_conf(self) -> Path:
        return self.target / "etc" / "smb.conf"

    @property
    def ldap_url(self) -> str:
        return f"ldap://{self.address}"

    def _claim_address(self) -> None:
        self.address, self._lock = claim_pod_reachable_address() if self.pod_reachable else claim_loopback_address()

    def provision(self) -> None:
        """`samba-tool domain provision` with provision_domain.sh's options (and this test DC's own address)."""
        # "/8" for a loopback alias: Samba only accepts it together with its netmask.
        interface = f"{self.address}/8" if self.address.startswith("127.") else self.address
        options = [f"--option={line.replace(' = ', '=', 1)}" for line in TEST_DC_OPTIONS.splitlines()]
        command = [
            "samba-tool", "domain", "provision",
            "--server-role=dc", f"--host-name={self.hostname}", "--dns-backend=SAMBA_INTERNAL",
            f"--realm={self.realm}", f"--domain={self.netbios_name}", "--use-rfc2307",
            f"--targetdir={self.target}", f"--host-ip={self.address}",
            f"--option=interfaces={interface}", "--option=bind interfaces only=yes",
            # Not the host's resolver (unreachable here: every name outside the zone would wait for it), and
            # never itself (a query outside the zone would loop until the DNS server drowns): an address where
            # nothing listens answers "unreachable" at once.
            f"--option=dns forwarder={NO_RESOLVER}",
            *options,
        ]  # fmt: skip
        # On the command line, as provision_domain.sh gives it (a throwaway test password).
        result = subprocess.run(
            [*command, f"--adminpass={self.admin_password}"],
            capture_output=True,
            text=True,
            timeout=300,
            env=environment_of_this_process(),
        )
        if result.returncode != 0:
            raise ServiceError(f"provisioning the legacy domain failed: {result.stderr[-1500:]}")

    def start(self, timeout_s: float = 90) -> None:
        """Provision on the first start, then run samba (its own DNS as its resolver) until LDAP answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.address:
            self._claim_address()
            self.admin_password_file.write_text(self.admin_password + "\n")
            self.admin_password_file.chmod(0o600)
        if not (self.target / "private" / "sam.ldb").exists():
            self.provision()
        resolv = self.directory / "resolv.conf"
        resolv.write_text(f"nameserver {self.address}\n")
        private = 'mkdir -p "$0" /run/samba && mount --bind "$0" /run/samba && mount --bind "$1" /etc/resolv.conf'
        self._process = start_process(
            [
                "unshare", "--mount", "--propagation", "private", "sh", "-c", f'{private} && shift && exec "$@"',
                str(self.directory / "run-samba"), str(resolv),
                "samba", "--interactive", "--debug-stdout", f"--configfile={self.smb_conf}",
            ],
            self.log,
            environment_of_this_process(),
        )  # fmt: skip
        try:
            wait_until(self.answers, timeout_s, f"the legacy DC on {self.address}", self.log, self._process)
        except TimeoutError as exc:
            self.stop()
            raise ServiceError(str(exc)) from None

    def answers(self) -> bool:
        from samba import Ldb

        if not port_open(self.address, 389):
            return False
        try:
            Ldb(url=self.ldap_url).search(base="", scope=0, attrs=["defaultNamingContext"])
        except Exception:  # noqa: BLE001 - not answering yet, whatever the reason
            return False
        return True

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """Stop samba (its data stays: `start` runs the same domain again)."""
        stop_process_group(self._process)
        self._process = None

    def close(self) -> None:
        """Stop and give the address back."""
        self.stop()
        if self._lock is not None:
            if self.pod_reachable:
                subprocess.run(["ip", "address", "del", f"{self.address}/32", "dev", "lo"], capture_output=True)
            os.close(self._lock)
            self._lock = None

    def samdb(self, username: str = "Administrator", password: str | None = None):
        """A SamDB connection over LDAP, as the old worker opens it (Administrator unless told otherwise)."""
        from samba.credentials import Credentials
        from samba.param import LoadParm
        from samba.samdb import SamDB

        lp = LoadParm()
        lp.load(str(self.smb_conf))
        credentials = Credentials()
        credentials.guess(lp)
        credentials.set_domain(self.netbios_name)
        credentials.set_username(username)
        credentials.set_password(self.admin_password if password is None else password)
        return SamDB(url=self.ldap_url, lp=lp, credentials=credentials)

    def add_people(self, people: list[LegacyPerson]) -> None:
        """Each person's account as the old worker made it (`add_legacy_accounts`)."""
        add_legacy_accounts(self.samdb(), people)

    def highest_usn(self) -> int:
        """The DC's highestCommittedUSN: it moves with every write the DC makes or takes in."""
        from samba import Ldb

        found = Ldb(url=self.ldap_url).search(base="", scope=0, attrs=["highestCommittedUSN"])
        return int(found[0]["highestCommittedUSN"][0])


def add_legacy_accounts(samdb, people: list[LegacyPerson]) -> None:
    """Each person's account as ES4PS-Containers' worker made it, over `samdb` (as Administrator): newuser in
    CN=Users named by the username, without `mail`, disabled, enabled once the address was proven. The same
    accounts a joined DC replicates from the old one, made on whichever DC a test runs."""
    for person in people:
        if not person.in_directory:
            continue
        samdb.newuser(
            person.username,
            person.password,
            force_password_change_at_next_login_req=False,
            givenname=person.first_name,
            surname=person.last_name,
            loginshell="/bin/bash",
            unixhome=f"/home/{person.username}",
            useusernameascn=True,
        )
        samdb.disable_account(f"(samAccountName={person.username})")
        if person.verified and person.active:
            samdb.enable_account(f"(samAccountName={person.username})")


# The table of ES4PS-Containers' CollegeUser model (app `main`) as Django 5's migration creates it in SQLite.
COLLEGE_USER_TABLE = """
CREATE TABLE "main_collegeuser" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "password" varchar(128) NOT NULL,
    "last_login" datetime NULL,
    "is_superuser" bool NOT NULL,
    "username" varchar(40) NOT NULL UNIQUE,
    "email" varchar(255) NOT NULL UNIQUE,
    "first_name" varchar(40) NOT NULL,
    "last_name" varchar(100) NOT NULL,
    "verification_token" varchar(8) NOT NULL UNIQUE,
    "is_verified" bool NOT NULL,
    "is_admin" bool NOT NULL,
    "is_staff" bool NOT NULL,
    "is_active" bool NOT NULL,
    "date_joined" datetime NOT NULL
)
"""
_COLUMNS = (
    "password", "last_login", "is_superuser", "username", "email", "first_name", "last_name",
    "verification_token", "is_verified", "is_admin", "is_staff", "is_active", "date_joined",
)  # fmt: skip


def _row(person: LegacyPerson, index: int) -> tuple:
    """A CollegeUser row: Django's password hash stands in (never read by the import), a token of 8 digits."""
    joined = person.joined.astimezone(datetime.UTC).replace(tzinfo=None).isoformat(sep=" ")
    return (
        f"pbkdf2_sha256$720000${secrets.token_hex(6)}${secrets.token_urlsafe(32)}",
        None,
        person.staff,
        person.username,
        person.email,
        person.first_name,
        person.last_name,
        f"{index:08d}",
        person.verified,
        person.staff,
        person.staff,
        person.active,
        joined,
    )


def legacy_portal_database(path: Path, people: list[LegacyPerson]) -> Path:
    """The old portal's SQLite database (its db.sqlite3) holding `people`."""
    connection = sqlite3.connect(path)
    try:
        connection.execute(COLLEGE_USER_TABLE)
        # Fixed column names, values bound as parameters.
        insert = f'INSERT INTO "main_collegeuser" ({", ".join(_COLUMNS)}) VALUES ({", ".join("?" * len(_COLUMNS))})'  # noqa: S608
        connection.executemany(insert, [_row(person, index) for index, person in enumerate(people, 1)])
        connection.commit()
    finally:
        connection.close()
    return path


# The same table as Django 5's migration creates it in PostgreSQL (an installation that moved its portal there).
COLLEGE_USER_TABLE_POSTGRES = (
    COLLEGE_USER_TABLE.replace('"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT', '"id" integer NOT NULL PRIMARY KEY')
    .replace("datetime", "timestamp with time zone")
    .replace("bool NOT NULL", "boolean NOT NULL")
)


def legacy_portal_postgres(url: str, people: list[LegacyPerson]) -> None:
    """The old portal's table holding `people` in the PostgreSQL database at `url`."""
    import psycopg

    with psycopg.connect(url) as connection:
        connection.execute(COLLEGE_USER_TABLE_POSTGRES)
        # Fixed column names, values bound as parameters.
        placeholders = ", ".join(["%s"] * (len(_COLUMNS) + 1))
        insert = f'INSERT INTO "main_collegeuser" (id, {", ".join(_COLUMNS)}) VALUES ({placeholders})'  # noqa: S608
        rows = [(index, *_row(person, index)[:-1], person.joined) for index, person in enumerate(people, 1)]
        connection.cursor().executemany(insert, rows)


def sqlite_dump(database: Path) -> str:
    """`sqlite3 db.sqlite3 .dump`: the SQL text of the whole database."""
    connection = sqlite3.connect(database)
    try:
        return "\n".join(connection.iterdump()) + "\n"
    finally:
        connection.close()


def dumpdata_json(database: Path) -> str:
    """What `manage.py dumpdata main.CollegeUser` prints for the old portal's rows."""
    connection = sqlite3.connect(database)
    connection.row_factory = sqlite3.Row
    try:
        rows = connection.execute('SELECT * FROM "main_collegeuser" ORDER BY id').fetchall()
    finally:
        connection.close()
    objects = []
    for row in rows:
        fields = dict(row)
        fields.pop("id")
        for flag in ("is_superuser", "is_verified", "is_admin", "is_staff", "is_active"):
            fields[flag] = bool(fields[flag])
        fields["date_joined"] = fields["date_joined"].replace(" ", "T") + "Z"
        fields.update(groups=[], user_permissions=[])
        objects.append({"model": "main.collegeuser", "pk": row["id"], "fields": fields})
    return json.dumps(objects, indent=2)


def move_legacy_accounts(dc, accounts_file: Path) -> tuple[int, dict, str]:
    """`es4ps-samba-dc move-legacy-accounts` as the runbook runs it, as `dc`'s Administrator (a SambaDC of the
    testkit, or a LegacyDC): (exit code, its JSON report, its stderr)."""
    password_file = dc.admin_password_file
    env = {
        "PATH": os.environ["PATH"],
        "ES4PS_LDAP_URL": dc.ldap_url,
        "ES4PS_REALM": dc.realm,
        "ES4PS_NETBIOS_NAME": dc.netbios_name,
        "ES4PS_ADMIN_PASSWORD_FILE": str(password_file),
    }
    result = subprocess.run(
        [str(VENV_BIN / "es4ps-samba-dc"), "move-legacy-accounts", str(accounts_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout) if result.returncode == 0 else {}
    return result.returncode, report, result.stderr
