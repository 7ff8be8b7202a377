"""The file server's settings: the variables the operator sets (docs/interfaces.md), read and checked once."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from es4ps_contract.environment import Environment, SettingError, Variable

# A share name Windows and Samba both accept and no reserved one: letters, digits, '-', '_', at most 80 characters.
SHARE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")
# Section names smb.conf gives a meaning of its own (and the print share's).
RESERVED_SHARES = frozenset({"global", "homes", "printers", "print$", "ipc$", "pdf"})
ACCESS = ("readWrite", "readOnly")

VARIABLES = (
    Variable("ES4PS_REALM", "the realm, e.g. `AD.ACME.EXAMPLE`"),
    Variable("ES4PS_NETBIOS_NAME", "the domain's NetBIOS name (empty: the realm's first label)", ""),
    Variable("ES4PS_FILES_HOSTNAME", "the file server's computer name in the domain (at most 15 characters)"),
    Variable("ES4PS_JOIN_SERVER", "a DC of the domain to join through (name or address)"),
    Variable("ES4PS_DATA_DIR", "the volume: Samba's member state, homes, shares, printed files", "/var/lib/samba"),
    Variable("ES4PS_SMB_CONF", "where smb.conf is written (Samba's tools read it there)", "/etc/samba/smb.conf"),
    Variable("ES4PS_ADMIN_PASSWORD_FILE", "the domain Administrator's password (joins the computer)", secret_file=True),
    Variable(
        "ES4PS_MACHINE_PASSWORD_FILE",
        "the file server's computer-account password (its Secret): the join sets it, and it is never rotated, so a"
        " lost volume joins again as the same computer",
        secret_file=True,
    ),
    Variable("ES4PS_ID_RANGE", "the uids and gids the domain's Unix policy gives (`low-high`)", "10000-999999"),
    Variable("ES4PS_FILES_HOMES", "serve a home `\\\\<server>\\<name>` to every person of the domain", "true"),
    Variable(
        "ES4PS_FILES_HOMES_QUOTA_BYTES",
        "the most a home should hold, in bytes: clients see it as the home's size and free space (empty: the volume's)",
        "",
    ),
    Variable("ES4PS_FILES_SHARES", "JSON as `spec.fileServices.shares`: [{name, groups, access}]", "[]"),
    Variable("ES4PS_FILES_PRINTING", "serve the print share `pdf` (CUPS with its PDF printer)", "false"),
    Variable("ES4PS_FILES_METRICS_PORT", "the port of Prometheus' /metrics (es4ps_samba.files.metrics)", "9935"),
    Variable(
        "ES4PS_FILES_USAGE_INTERVAL_SECONDS", "how often the metrics walk the volume (homes' and shares' bytes)", "300"
    ),
)


@dataclass(frozen=True)
class Share:
    """A group share: `name`, the directory groups allowed in, and `access` (readWrite or readOnly)."""

    name: str
    groups: tuple[str, ...]
    access: str = "readWrite"

    @property
    def writable(self) -> bool:
        return self.access == "readWrite"


@dataclass(frozen=True)
class FilesConfig:
    """The file server's settings, read from the environment by `from_env`."""

    realm: str
    workgroup: str
    hostname: str
    join_server: str
    data_dir: Path
    smb_conf: Path
    admin_password_file: Path
    machine_password_file: Path
    id_range: tuple[int, int] = (10000, 999999)
    homes: bool = True
    homes_quota_bytes: int | None = None
    shares: tuple[Share, ...] = ()
    printing: bool = False
    metrics_port: int = 9935
    usage_interval_seconds: float = 300.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> FilesConfig:
        """Read and check the variables; SettingError names the one that is wrong."""
        env = Environment(VARIABLES, environ)
        realm = env.text("ES4PS_REALM").upper()
        hostname = env.text("ES4PS_FILES_HOSTNAME").lower()
        if len(hostname) > 15:
            raise SettingError("ES4PS_FILES_HOSTNAME must be at most 15 characters (it is a NetBIOS name)")
        return cls(
            realm=realm,
            workgroup=env.text("ES4PS_NETBIOS_NAME").upper() or realm.split(".")[0],
            hostname=hostname,
            join_server=env.text("ES4PS_JOIN_SERVER"),
            data_dir=Path(env.text("ES4PS_DATA_DIR")),
            smb_conf=Path(env.text("ES4PS_SMB_CONF")),
            admin_password_file=Path(env.text("ES4PS_ADMIN_PASSWORD_FILE")),
            machine_password_file=Path(env.text("ES4PS_MACHINE_PASSWORD_FILE")),
            id_range=_id_range(env.text("ES4PS_ID_RANGE")),
            homes=env.flag("ES4PS_FILES_HOMES"),
            homes_quota_bytes=(
                env.integer("ES4PS_FILES_HOMES_QUOTA_BYTES", minimum=1024)
                if env.text("ES4PS_FILES_HOMES_QUOTA_BYTES")
                else None
            ),
            shares=parse_shares(env.raw("ES4PS_FILES_SHARES")),
            printing=env.flag("ES4PS_FILES_PRINTING"),
            metrics_port=env.integer("ES4PS_FILES_METRICS_PORT", minimum=1, maximum=65535),
            usage_interval_seconds=env.number("ES4PS_FILES_USAGE_INTERVAL_SECONDS", minimum=1),
        )

    @property
    def dfree_script(self) -> Path:
        """The homes' `dfree command` (es4ps_samba.files.smbconf.dfree_script), in the container's /run."""
        return Path("/run/es4ps-files/dfree")

    @property
    def homes_dir(self) -> Path:
        return self.data_dir / "homes"

    @property
    def shares_dir(self) -> Path:
        return self.data_dir / "shares"

    @property
    def printed_dir(self) -> Path:
        """Where the PDF printer puts each person's printed files (a folder per person)."""
        return self.data_dir / "printed"

    @property
    def spool_dir(self) -> Path:
        """Where smbd spools a print job before handing it to CUPS."""
        return self.data_dir / "spool"

    def admin_password(self) -> str:
        return _secret(self.admin_password_file, "ES4PS_ADMIN_PASSWORD_FILE")

    def machine_password(self) -> str:
        return _secret(self.machine_password_file, "ES4PS_MACHINE_PASSWORD_FILE")


def parse_shares(text: str) -> tuple[Share, ...]:
    """The shares of ES4PS_FILES_SHARES, checked: valid unique names, at least one group each, a known access."""
    try:
        items = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise SettingError(f"ES4PS_FILES_SHARES is not JSON: {exc.msg}") from None
    if not isinstance(items, list):
        raise SettingError("ES4PS_FILES_SHARES must be a JSON list of shares")
    shares: list[Share] = []
    for index, item in enumerate(items):
        where = f"ES4PS_FILES_SHARES[{index}]"
        if not isinstance(item, dict):
            raise SettingError(f"{where} must be an object with name, groups and access")
        name, groups, access = item.get("name"), item.get("groups"), item.get("access", "readWrite")
        if not isinstance(name, str) or not SHARE_NAME.match(name) or name.lower() in RESERVED_SHARES:
            raise SettingError(f"{where}.name {str(name)[:40]!r} is not a valid share name")
        if any(share.name.lower() == name.lower() for share in shares):
            raise SettingError(f"{where}.name {name!r} is given twice")
        if not isinstance(groups, list) or not groups or not all(isinstance(g, str) and g for g in groups):
            raise SettingError(f"{where}.groups must list at least one group name")
        if any(set(group) & set('"@+&,\\') for group in groups):
            raise SettingError(f"{where}.groups: a group name holds a character smb.conf cannot quote")
        if access not in ACCESS:
            raise SettingError(f"{where}.access must be one of {', '.join(ACCESS)}")
        shares.append(Share(name, tuple(groups), access))
    return tuple(shares)


def _id_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit() or int(low) >= int(high):
        raise SettingError(f"ES4PS_ID_RANGE must be `low-high`, not {text[:40]!r}")
    return int(low), int(high)


def _secret(path: Path, variable: str) -> str:
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise SettingError(f"cannot read {variable}: {exc.strerror}") from None
    if not value:
        raise SettingError(f"{variable} is empty")
    return value
