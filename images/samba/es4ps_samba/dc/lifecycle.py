"""Steps the operator runs as Jobs on a domain's DCs: `es4ps-samba-dc leave | remove | dbcheck`.

When `directory.replicas` goes down, the operator takes the highest DCs out
of the domain in three steps, so the domain never keeps a dead DC in its
topology and nothing written on the leaving DC is lost:

1. `leave` (the leaving DC still runs): the FSMO roles it holds move to the
   remaining DC (`ES4PS_JOIN_SERVER`, dc0), and that DC pulls the leaving
   one's last changes of every naming context;
2. the operator deletes the leaving DC's StatefulSet;
3. `remove` (run once the leaving DC no longer answers): the remaining DC
   forgets it (`samba-tool domain demote --remove-other-dead-server`: NTDS
   settings, connections, server and computer objects, DNS records), and the
   leaving DC's volume, when mounted, is marked as no longer holding a DC of
   the domain, so that a DC started on it again joins afresh.

Both steps are idempotent: run again after a crash, they finish what is left.

Before the DCs get another image, `dbcheck` checks dc0's database (online,
with the image they run now); each DC checks its own again when it first
starts with the new Samba (es4ps_samba.dc.domain.check_after_upgrade).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from es4ps_contract.environment import Environment, SettingError, Variable

from ..samdb import open_samdb_at
from .config import MARKER_NAME
from .domain import admin_arguments, admin_samdb, remove_dc, samba_tool
from .probes import ldap_answers

# The marker a DC's volume gets when the domain no longer has that DC.
RETIRED_MARKER_NAME = ".es4ps-domain-removed"
FSMO_ROLES = ("rid", "pdc", "infrastructure", "schema", "naming", "domaindns", "forestdns")

VARIABLES = (
    Variable("ES4PS_REALM", "the realm"),
    Variable("ES4PS_NETBIOS_NAME", "the domain's NetBIOS name (empty: the realm's first label)", ""),
    Variable("ES4PS_ADMIN_PASSWORD_FILE", "the domain Administrator's password", secret_file=True),
    Variable("ES4PS_JOIN_SERVER", "the DC that stays (it takes the roles and the last changes)"),
    Variable("ES4PS_LEAVING_DC", "the leaving DC's name, e.g. dc2 (leave, remove)", ""),
    Variable("ES4PS_LEAVING_SERVER", "the leaving DC's address (remove)", ""),
    Variable("ES4PS_DATA_DIR", "the leaving DC's volume, when mounted (remove marks it if it holds that DC)", ""),
    Variable("ES4PS_GONE_TIMEOUT_SECONDS", "how long remove waits for the leaving DC to stop answering", "600"),
)


@dataclass(frozen=True)
class LeaveConfig:
    realm: str
    netbios_name: str
    admin_password_file: Path
    join_server: str
    leaving_dc: str
    leaving_server: str
    data_dir: Path | None
    gone_timeout_seconds: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LeaveConfig:
        env = Environment(VARIABLES, environ)
        realm = env.text("ES4PS_REALM").upper()
        data_dir = env.text("ES4PS_DATA_DIR")
        return cls(
            realm=realm,
            netbios_name=env.text("ES4PS_NETBIOS_NAME").upper() or realm.split(".")[0],
            admin_password_file=Path(env.text("ES4PS_ADMIN_PASSWORD_FILE")),
            join_server=env.text("ES4PS_JOIN_SERVER"),
            leaving_dc=env.text("ES4PS_LEAVING_DC").lower(),
            leaving_server=env.text("ES4PS_LEAVING_SERVER"),
            data_dir=Path(data_dir) if data_dir else None,
            gone_timeout_seconds=env.number("ES4PS_GONE_TIMEOUT_SECONDS", minimum=1),
        )

    def admin_password(self) -> str:
        try:
            password = self.admin_password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise SettingError(f"cannot read ES4PS_ADMIN_PASSWORD_FILE: {exc.strerror}") from None
        if not password:
            raise SettingError("ES4PS_ADMIN_PASSWORD_FILE is empty")
        return password


def _log(message: str) -> None:
    print(f"es4ps-samba-dc: {message}", flush=True)


def _credentials(config: LeaveConfig) -> list[str]:
    return admin_arguments(config.netbios_name, config.admin_password())


def roles_held_by(samdb, dc_name: str) -> list[str]:
    """The FSMO roles (samba-tool's names) whose owner is DC `dc_name`."""
    import ldb

    held = []
    partitions = {
        "rid": f"CN=RID Manager$,CN=System,{samdb.domain_dn()}",
        "pdc": str(samdb.domain_dn()),
        "infrastructure": f"CN=Infrastructure,{samdb.domain_dn()}",
        "schema": str(samdb.get_schema_basedn()),
        "naming": f"CN=Partitions,{samdb.get_config_basedn()}",
        "domaindns": f"CN=Infrastructure,DC=DomainDnsZones,{samdb.domain_dn()}",
        "forestdns": f"CN=Infrastructure,DC=ForestDnsZones,{samdb.get_root_basedn()}",
    }
    for role in FSMO_ROLES:
        try:
            found = samdb.search(base=partitions[role], scope=ldb.SCOPE_BASE, attrs=["fSMORoleOwner"])
        except ldb.LdbError:
            continue
        owner = str(found[0].get("fSMORoleOwner", idx=0) or "")
        # The owner is the NTDS settings object of a server: CN=NTDS Settings,CN=<DC>,CN=Servers,...
        if owner.upper().startswith(f"CN=NTDS SETTINGS,CN={dc_name.upper()},"):
            held.append(role)
    return held


def _naming_contexts(samdb) -> list[str]:
    import ldb

    root = samdb.search(base="", scope=ldb.SCOPE_BASE, attrs=["namingContexts"])
    return [str(nc) for nc in root[0]["namingContexts"]]


def _require_leaving(config: LeaveConfig) -> None:
    if not config.leaving_dc or not config.leaving_server:
        raise SettingError("ES4PS_LEAVING_DC and ES4PS_LEAVING_SERVER name the leaving DC")


def dbcheck(config: LeaveConfig) -> None:
    """The remaining DC's directory, checked before an image roll-out: errors fail the Job (and stop it).

    Samba 4.17 cannot dbcheck over LDAP (samba-tool opens a local sam.ldb for the schema, and its
    checker reads @SAMBA_DSDB, which LDAP does not serve), and a Job must not open a running DC's
    database files. So the Job clones the DC's directory over DRS (`samba-tool drs clone-dc-database`,
    what a joining DC receives: every object with its replication metadata and links) into a scratch
    directory and checks that copy. What lives only in the DC's own files (its indexes) each DC checks
    itself on the first start of a new Samba (es4ps_samba.dc.domain.check_after_upgrade).
    """
    with tempfile.TemporaryDirectory(prefix="es4ps-dbcheck-") as scratch:
        samba_tool(
            "drs",
            "clone-dc-database",
            config.realm.lower(),
            f"--server={config.join_server}",
            f"--targetdir={scratch}",
            "--quiet",
            *_credentials(config),
        )
        _settle_rid_set(Path(scratch))
        samba_tool("dbcheck", "--cross-ncs", f"--configfile={scratch}/etc/smb.conf")
    _log(f"dbcheck of {config.join_server}'s directory (a DRS clone): no error")


def _settle_rid_set(clone: Path) -> None:
    """The clone believes it is the DC it copied, but that DC's place in its RID pool (rIDNextRID,
    rIDPreviousAllocationPool) is kept only in the DC's own files: without it dbcheck finds every SID
    of the pool "in conflict". The clone's place becomes the highest RID the pool's SIDs use."""
    import ldb
    from samba.dcerpc import security
    from samba.ndr import ndr_unpack

    samdb = open_samdb_at(clone)
    server = samdb.search(base=samdb.get_serverName(), scope=ldb.SCOPE_BASE, attrs=["serverReference"])[0]
    computer = samdb.search(base=str(server["serverReference"][0]), scope=ldb.SCOPE_BASE, attrs=["rIDSetReferences"])
    if "rIDSetReferences" not in computer[0]:
        return
    rid_set = ldb.Dn(samdb, str(computer[0]["rIDSetReferences"][0]))
    pool = int(samdb.search(base=rid_set, scope=ldb.SCOPE_BASE, attrs=["rIDAllocationPool"])[0]["rIDAllocationPool"][0])
    low, high = pool & 0xFFFFFFFF, pool >> 32
    domain_sid = str(samdb.get_domain_sid())
    used = [low - 1]
    for found in samdb.search(
        samdb.domain_dn(), expression="(objectSid=*)", attrs=["objectSid"], controls=["show_deleted:1"]
    ):
        sid = str(ndr_unpack(security.dom_sid, found["objectSid"][0]))
        domain, _, rid = sid.rpartition("-")
        if domain == domain_sid and low <= int(rid) <= high:
            used.append(int(rid))
    settled = ldb.Message(rid_set)
    for name, value in (("rIDPreviousAllocationPool", pool), ("rIDNextRID", max(used))):
        settled[name] = ldb.MessageElement(str(value), ldb.FLAG_MOD_REPLACE, name)
    samdb.modify(settled)


def leave(config: LeaveConfig) -> None:
    """Step 1: move the leaving DC's roles to the remaining DC and pull its last changes there."""
    _require_leaving(config)
    remaining = admin_samdb(config, config.join_server)
    for role in roles_held_by(remaining, config.leaving_dc):
        _log(f"transferring the {role} role from {config.leaving_dc} to {config.join_server}")
        samba_tool("fsmo", "transfer", f"--role={role}", f"--URL=ldap://{config.join_server}", *_credentials(config))
    for nc in _naming_contexts(remaining):
        _log(f"replicating {nc} from {config.leaving_dc} to {config.join_server}")
        # The remaining DC pulls from the leaving one (named as the domain knows it).
        samba_tool(
            "drs", "replicate", config.join_server, config.leaving_dc, nc, "--sync-forced", *_credentials(config)
        )
    _log(f"{config.leaving_dc} holds no role and its changes are on {config.join_server}: it may stop")


def remove(config: LeaveConfig) -> None:
    """Step 3: once the leaving DC is down, the domain forgets it, and its volume no longer counts as a DC."""
    _require_leaving(config)
    deadline = time.monotonic() + config.gone_timeout_seconds
    while ldap_answers(config.leaving_server, timeout_s=3):
        if time.monotonic() > deadline:
            raise SettingError(f"{config.leaving_dc} still answers at {config.leaving_server}: not removing a live DC")
        time.sleep(2)
    if remove_dc(config, config.join_server, config.leaving_dc):
        _log(f"removed {config.leaving_dc} from the domain")
    else:
        _log(f"the domain no longer names {config.leaving_dc}")
    if config.data_dir is not None:
        retire_volume(config.data_dir, config.leaving_dc)


def retire_volume(data_dir: Path, leaving_dc: str) -> bool:
    """Mark the leaving DC's volume so a DC started on it joins afresh; True when it was marked.

    Only a volume whose marker names the leaving DC: the runbook runs `remove` inside the remaining DC's
    container, whose ES4PS_DATA_DIR is its own volume, and retiring that marker would make the remaining DC
    wipe its database at its next start.
    """
    marker = data_dir / MARKER_NAME
    if not marker.exists():
        return False
    fields = marker.read_text().split()  # role realm hostname
    if len(fields) >= 3 and fields[2].lower() != leaving_dc.lower():
        _log(f"{data_dir} holds {fields[2]}, not {leaving_dc}: left as it is")
        return False
    marker.rename(data_dir / RETIRED_MARKER_NAME)
    _log(f"{data_dir} no longer holds a DC of the domain: a DC started on it joins afresh")
    return True
