"""A domain the operator did not make: checked before its DCs join it (`es4ps-samba-dc join-check`).

`spec.directory.bootstrap.join` makes the domain's DCs additional DCs of an
existing Samba AD domain (dc0 joins the named server; the others join dc0).
Before any DC is created, the operator's Job runs this check against the
server with the credentials given, and only reads: a domain that does not
answer, serves another realm, refuses the password, has another NetBIOS name,
already holds a DC of one of the names this domain's DCs would take, or an
account of the worker's name, is refused with a reason the operator shows in
its conditions. Nothing is written to the existing directory by the check.

The result is one JSON object, {"reason": ..., "message": ...}, written to the
termination log (where the operator reads it) and to stdout.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from es4ps_contract.directory import WORKER_ACCOUNT
from es4ps_contract.environment import Environment, SettingError, Variable

from ..samdb import open_remote_samdb
from .probes import LDAP_PORT

VARIABLES = (
    Variable("ES4PS_REALM", "the realm of the existing domain (`spec.realm`)"),
    Variable("ES4PS_NETBIOS_NAME", "the domain's NetBIOS name (empty: the realm's first label)", ""),
    Variable("ES4PS_ADMIN_PASSWORD_FILE", "the existing domain's Administrator password", secret_file=True),
    Variable("ES4PS_JOIN_SERVER", "the address of a DC of the existing domain (`bootstrap.join.server`)"),
    Variable("ES4PS_DC_NAME_TEMPLATE", "the names this domain gives its DCs, `{index}` for the number"),
    Variable("ES4PS_WORKER_ACCOUNT", "the directory account the workers will bind as", WORKER_ACCOUNT),
    Variable("ES4PS_CHECK_TIMEOUT_SECONDS", "how long the server has to answer", "15"),
    Variable("ES4PS_TERMINATION_LOG", "where the result goes for the operator", "/dev/termination-log"),
)

# The reasons the operator shows (DirectoryReady and Joined), one per way the join cannot go.
JOINABLE = "Joinable"
UNREACHABLE = "JoinServerUnreachable"
REALM_MISMATCH = "JoinRealmMismatch"
CREDENTIALS_REFUSED = "JoinCredentialsRefused"
NETBIOS_MISMATCH = "JoinNetBIOSNameMismatch"
NAME_TAKEN = "JoinNameTaken"
WORKER_ACCOUNT_TAKEN = "JoinWorkerAccountTaken"
_INVALID_CREDENTIALS = 49


@dataclass(frozen=True)
class JoinCheckConfig:
    realm: str
    netbios_name: str
    server: str
    dc_name_template: str
    worker_account: str
    timeout_s: float
    termination_log: Path
    admin_password: str = field(repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> JoinCheckConfig:
        env = Environment(VARIABLES, environ)
        realm = env.text("ES4PS_REALM").upper()
        template = env.text("ES4PS_DC_NAME_TEMPLATE").lower()
        if "{index}" not in template:
            raise SettingError("ES4PS_DC_NAME_TEMPLATE must hold {index}, e.g. dc{index}-1a2b")
        return cls(
            realm=realm,
            netbios_name=env.text("ES4PS_NETBIOS_NAME").upper() or realm.split(".")[0],
            server=env.text("ES4PS_JOIN_SERVER"),
            dc_name_template=template,
            worker_account=env.text("ES4PS_WORKER_ACCOUNT"),
            timeout_s=env.number("ES4PS_CHECK_TIMEOUT_SECONDS", minimum=1, maximum=600),
            termination_log=Path(env.text("ES4PS_TERMINATION_LOG")),
            admin_password=env.file_text("ES4PS_ADMIN_PASSWORD_FILE"),
        )


class JoinRefused(Exception):
    """The join cannot go ahead: `reason` for the operator's condition, `message` for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _realm_of(naming_context: str) -> str:
    """DC=dom,DC=legacy,DC=test -> DOM.LEGACY.TEST"""
    return ".".join(part.split("=", 1)[1] for part in naming_context.split(",")).upper()


def _root_dse(config: JoinCheckConfig) -> dict[str, str]:
    """The server's root DSE, read anonymously; refuses a server that does not answer LDAP."""
    import samba
    from samba.credentials import Credentials
    from samba.param import LoadParm

    try:
        with socket.create_connection((config.server, LDAP_PORT), timeout=config.timeout_s):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        message = f"{config.server} does not answer on the LDAP port ({LDAP_PORT}): {why}"
        raise JoinRefused(UNREACHABLE, message) from None
    credentials = Credentials()
    credentials.set_anonymous()
    try:
        connection = samba.Ldb(f"ldap://{config.server}", lp=LoadParm(), credentials=credentials)
        found = connection.search(base="", scope=samba.ldb.SCOPE_BASE, attrs=["defaultNamingContext", "dnsHostName"])
    except samba.ldb.LdbError as exc:
        raise JoinRefused(UNREACHABLE, f"{config.server} does not answer as an AD DC: {exc.args[-1]}") from None
    return {name: str(found[0].get(name, idx=0) or "") for name in ("defaultNamingContext", "dnsHostName")}


def _admin_samdb(config: JoinCheckConfig):
    import ldb

    try:
        return open_remote_samdb(
            f"ldap://{config.server}", config.realm, config.netbios_name, "Administrator", config.admin_password
        )
    except ldb.LdbError as exc:
        if exc.args[0] == _INVALID_CREDENTIALS:
            raise JoinRefused(
                CREDENTIALS_REFUSED,
                f"{config.server} refused the password of {config.netbios_name}\\Administrator "
                "(spec.directory.bootstrap.join.credentialsSecretRef)",
            ) from None
        raise JoinRefused(UNREACHABLE, f"signing in to {config.server} failed: {exc.args[-1]}") from None


def _netbios_name(samdb) -> str:
    import ldb

    found = samdb.search(
        base=f"CN=Partitions,{samdb.get_config_basedn()}",
        scope=ldb.SCOPE_ONELEVEL,
        expression=f"(&(objectClass=crossRef)(nCName={ldb.binary_encode(str(samdb.domain_dn()))}))",
        attrs=["nETBIOSName"],
    )
    return str(found[0]["nETBIOSName"][0]).upper() if found else ""


def _domain_controllers(samdb) -> list[str]:
    import ldb

    found = samdb.search(
        base=samdb.get_config_basedn(), scope=ldb.SCOPE_SUBTREE, expression="(objectClass=server)", attrs=["cn"]
    )
    return sorted(str(message["cn"][0]) for message in found)


def check_join(config: JoinCheckConfig) -> str:
    """Read the existing domain through `config.server`; raise JoinRefused, or return what was found."""
    import ldb

    root = _root_dse(config)
    served = _realm_of(root["defaultNamingContext"]) if root["defaultNamingContext"] else "no domain"
    if served != config.realm:
        raise JoinRefused(
            REALM_MISMATCH,
            f"{config.server} serves {served}, not {config.realm} (spec.realm and spec.directory.bootstrap.join.realm)",
        )
    samdb = _admin_samdb(config)
    netbios = _netbios_name(samdb)
    if netbios != config.netbios_name:
        raise JoinRefused(
            NETBIOS_MISMATCH, f"the domain's NetBIOS name is {netbios}, not {config.netbios_name}: set spec.netbiosName"
        )
    controllers = _domain_controllers(samdb)
    ours = re.compile(re.escape(config.dc_name_template).replace(re.escape("{index}"), r"\d+"), re.IGNORECASE)
    taken = [name for name in controllers if ours.fullmatch(name)]
    if taken:
        raise JoinRefused(
            NAME_TAKEN, f"the domain already has a DC named {', '.join(taken)}, a name this domain's DCs take"
        )
    account = samdb.search(
        base=samdb.domain_dn(),
        scope=ldb.SCOPE_SUBTREE,
        expression=f"(sAMAccountName={ldb.binary_encode(config.worker_account)})",
        attrs=["1.1"],
    )
    if account:
        raise JoinRefused(
            WORKER_ACCOUNT_TAKEN,
            f"the domain already has an account named {config.worker_account} ({account[0].dn}): the workers "
            "would take it over; rename it first",
        )
    return (
        f"{root['dnsHostName'] or config.server} serves {config.realm} ({netbios}); its DCs: "
        f"{', '.join(controllers)}; the Administrator's password is accepted"
    )


def join_check(config: JoinCheckConfig) -> int:
    """The Job's step: check, then write the result where the operator reads it; 0 when the join may go ahead."""
    try:
        result = {"reason": JOINABLE, "message": check_join(config)}
    except JoinRefused as refused:
        result = {"reason": refused.reason, "message": refused.message}
    line = json.dumps(result)
    print(line, flush=True)
    with contextlib.suppress(OSError):  # outside a Pod there may be none: stdout has it
        config.termination_log.write_text(line + "\n")
    return 0 if result["reason"] == JOINABLE else 1
