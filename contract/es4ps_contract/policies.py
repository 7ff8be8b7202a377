"""What a policy may give an account: its OU, its groups and its Unix attributes, and the rules for each.

The portal picks a policy by the registration's e-mail domain and puts what it
says into the create task (and into an apply-policy task when staff move an
account); the worker applies it inside the managed OU only. Both check these
rules, so neither a mistyped spec nor a forged task can put an account into a
privileged group or give it the uid of root.

Names of OUs and groups are one RDN value each, from a conservative character
set (no DN or filter syntax can slip through); groups are compared as AD does,
case-insensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .directory import COMPUTERS_OU_NAME
from .validation import InvalidField

# The domain's built-in groups. Most grant rights over the domain (Domain Admins, the operators,
# DnsAdmins, the key admins ...); the others belong to the directory itself (Domain Users, the DCs'
# groups). No policy may name one: the API server refuses it (the CRD holds the same list, a unit
# test keeps them equal) and so does the worker, before it looks at the directory. Lower case.
PRIVILEGED_GROUPS = frozenset(
    {
        "access control assistance operators",
        "account operators",
        "administrators",
        "allowed rodc password replication group",
        "backup operators",
        "cert publishers",
        "certificate service dcom access",
        "cloneable domain controllers",
        "cryptographic operators",
        "denied rodc password replication group",
        "distributed com users",
        "dnsadmins",
        "dnsupdateproxy",
        "domain admins",
        "domain computers",
        "domain controllers",
        "domain guests",
        "domain users",
        "enterprise admins",
        "enterprise key admins",
        "enterprise read-only domain controllers",
        "event log readers",
        "group policy creator owners",
        "guests",
        "hyper-v administrators",
        "iis_iusrs",
        "incoming forest trust builders",
        "key admins",
        "network configuration operators",
        "performance log users",
        "performance monitor users",
        "pre-windows 2000 compatible access",
        "print operators",
        "protected users",
        "ras and ias servers",
        "read-only domain controllers",
        "remote desktop users",
        "remote management users",
        "replicator",
        "schema admins",
        "server operators",
        "storage replica administrators",
        "terminal server license servers",
        "users",
        "windows authorization access group",
    }
)
# One RDN value: letters, digits, space, '.', '-', '_'; at most 64 characters (cn's and ou's upper bound).
NAME_MAX_LENGTH = 64
_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9])?")
GROUPS_MAX = 20
# uids below this are the clients' own system accounts; above this, 32-bit tools break.
UID_MIN = 1000
ID_MAX = 2**31 - 1
PATH_MAX_LENGTH = 255
_PATH_RE = re.compile(r"/[A-Za-z0-9._/+@-]*")
UNIX_FIELDS = ("uid_range_start", "uid_range_end", "gid_number", "login_shell", "home_directory")


def _name(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidField(field, "must be a string")
    if not _NAME_RE.fullmatch(value) or "  " in value:
        raise InvalidField(
            field,
            f"must be 1 to {NAME_MAX_LENGTH} letters, digits, spaces, '.', '-' or '_',"
            " starting and ending with a letter or digit",
        )
    return value


def normalize_ou(value: object, field: str = "ou") -> str:
    """An OU name under the managed OU, or "" for the managed OU itself; never the computers OU's."""
    if value == "":
        return ""
    name = _name(value, field)
    if name.casefold() == COMPUTERS_OU_NAME.casefold():
        raise InvalidField(field, f"{name!r} is the OU of the domain's managed computers")
    return name


def normalize_computer_ou(value: object, field: str = "ou") -> str:
    """An OU name under the computers OU, or "" for the computers OU itself."""
    if value == "":
        return ""
    return _name(value, field)


def normalize_group(value: object, field: str = "groups") -> str:
    """A group name a policy may give; a privileged or built-in group of the domain is refused."""
    name = _name(value, field)
    if name.lower() in PRIVILEGED_GROUPS:
        raise InvalidField(field, f"{name!r} is a privileged or built-in group of the domain")
    return name


def normalize_groups(value: object, field: str = "groups") -> tuple[str, ...]:
    """The groups of a policy: distinct (as AD compares them), at most GROUPS_MAX, kept in their order."""
    if not isinstance(value, (list, tuple)):
        raise InvalidField(field, "must be a list")
    if len(value) > GROUPS_MAX:
        raise InvalidField(field, f"may hold at most {GROUPS_MAX} groups")
    groups: dict[str, str] = {}
    for item in value:
        name = normalize_group(item, field)
        groups.setdefault(name.lower(), name)
    return tuple(groups.values())


def _whole_number(value: object, field: str, minimum: int, maximum: int = ID_MAX) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidField(field, "must be a whole number")
    if not minimum <= value <= maximum:
        raise InvalidField(field, f"must be between {minimum} and {maximum}")
    return value


def _absolute_path(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidField(field, "must be a string")
    if len(value) > PATH_MAX_LENGTH or not _PATH_RE.fullmatch(value) or "/../" in f"{value}/" or "//" in value:
        raise InvalidField(field, "must be an absolute path of letters, digits and . _ / + @ - (no '..')")
    return value


@dataclass(frozen=True)
class UnixAttributes:
    """What a new account gets for Linux logins. uidNumber itself is not chosen here: the worker derives it
    from the account's RID, uid_range_start + RID, which the domain keeps unique across DCs."""

    uid_range_start: int
    uid_range_end: int
    gid_number: int
    login_shell: str
    home_directory: str

    @classmethod
    def parse(cls, value: object, field: str = "unix") -> UnixAttributes:
        """From a task's `unix` mapping; raises InvalidField naming the first bad entry."""
        if not isinstance(value, dict):
            raise InvalidField(field, "must be a mapping")
        missing = [name for name in UNIX_FIELDS if name not in value]
        extra = sorted(set(value) - set(UNIX_FIELDS), key=str)
        if missing:
            raise InvalidField(f"{field}.{missing[0]}", "is required")
        if extra:
            raise InvalidField(f"{field}.{str(extra[0])[:64]}", "is not a Unix attribute")
        start = _whole_number(value["uid_range_start"], f"{field}.uid_range_start", UID_MIN)
        end = _whole_number(value["uid_range_end"], f"{field}.uid_range_end", start + 1)
        return cls(
            uid_range_start=start,
            uid_range_end=end,
            gid_number=_whole_number(value["gid_number"], f"{field}.gid_number", 1),
            login_shell=_absolute_path(value["login_shell"], f"{field}.login_shell"),
            home_directory=_absolute_path(value["home_directory"], f"{field}.home_directory"),
        )

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in UNIX_FIELDS}

    def uid_number(self, rid: int) -> int | None:
        """The uidNumber of the account with this RID, or None when the range has no room for it."""
        uid = self.uid_range_start + rid
        return uid if uid <= self.uid_range_end else None
