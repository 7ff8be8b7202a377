"""What a running DC keeps true about the DCs of its domain, checked with its health check every interval.

**Their addresses.** A DC Pod that is created again gets a new address
(`networkMode: Service`; in HostNetwork mode, when it lands on another node).
DCs find each other through the domain's DNS zone, which they replicate: the
zone keeps the old A record of the moved DC until that DC writes its new one,
and the others learn of it only by replicating from the moved DC, at the old
address. Samba's own `samba_dnsupdate` writes the DC's own record at start,
but samba gives it 20 s (not enough on a loaded node) and then waits ten
minutes to try again. So each DC writes, in its own copy of the zone, the
current address of itself (`ES4PS_HOST_IP`) and of every other DC (what the
DC's Service resolves to, `ES4PS_PEER_ADDRESS_TEMPLATE`) where the zone
differs; the change then replicates like any other.

**Their identity.** A DC that joined again under its name (its volume was
lost) has a new machine key. Samba keeps the Kerberos tickets it got for the
old key until they expire, 10 hours later, and every pull from that DC fails
meanwhile (`WERR_GEN_FAILURE`: its RPC bind is refused). Before joining
again, the DC removed its former self from the domain, which leaves a
tombstone of its server object. So when a DC of the domain has a server
tombstone of its own name deleted since this samba started (its former self
may have been known to this samba, whenever it joined) and that DC is up
(its join is done), samba is restarted once to drop those tickets, before a
pull fails.

**Whose they are.** A domain that joined an existing one holds DCs it did not
make (of names outside its scheme) until they are demoted: they are never
given an address of ours, and while any is in the domain the domain-wide
settings stay the existing domain's (`writes_domain_settings`).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..samdb import open_samdb_at
from .config import DCConfig

# The DCs' names (es4ps_operator.naming.dc_hostname): dc<index>, or dc<index>-<suffix> in a restored or joined
# domain (one suffix for all of a domain's DCs; a joined domain's own DCs have names of their own).
DC_NAME = re.compile(r"^dc(\d+)(-[0-9a-z]+)?$")


@dataclass(frozen=True)
class DomainController:
    name: str  # dc1, lower case
    guid: str  # its NTDS Settings object's GUID (a DC that joined again has a new one)
    addresses: tuple[str, ...]  # its A records in this DC's copy of the zone


def address_template_for(name: str, template: str, own_name: str) -> str | None:
    """The DNS name of DC `name`'s Service (`template` with {index}), or None for a name not ours: one of
    another scheme than `own_name` (this DC's), e.g. a joined domain's own dc1 beside the operator's dc0-1a2b."""
    match, own = DC_NAME.match(name), DC_NAME.match(own_name)
    if not (match and own and template) or match.group(2) != own.group(2):
        return None
    return template.format(index=int(match.group(1)))


def foreign_dcs(samdb, own_name: str) -> list[str]:
    """The domain's DCs not of this DC's naming scheme: an existing domain's own, until they are demoted."""
    import ldb

    found = samdb.search(
        base=samdb.get_config_basedn(), scope=ldb.SCOPE_SUBTREE, expression="(objectClass=nTDSDSA)", attrs=["1.1"]
    )
    names = (str(message.dn.parent().get_rdn_value()).lower() for message in found)
    return sorted(name for name in names if address_template_for(name, "{index}", own_name) is None)


def writes_domain_settings(config: DCConfig, samdb) -> bool:
    """Whether this DC writes the domain-wide settings now (ES4PS_DOMAIN_SETTINGS): a domain that joined an
    existing one leaves them as that domain has them while any of its old DCs is still in it."""
    if config.domain_settings == "when-only-ours":
        return not foreign_dcs(samdb, config.hostname)
    return True


def stale_addresses(controllers: Iterable[DomainController], current: Mapping[str, str]) -> dict[str, str]:
    """{name: address} for the DCs whose A records are not just their current address."""
    return {
        dc.name: current[dc.name] for dc in controllers if current.get(dc.name) and dc.addresses != (current[dc.name],)
    }


def replaced_since(started: float, names: Iterable[str], removed: Iterable[tuple[str, float]]) -> list[str]:
    """The DCs (`names`) whose former self was removed from the domain after `started`; `removed`: (name, when)
    of the domain's server tombstones."""
    again = {name for name, when in removed if when >= started}
    return sorted(name for name in names if name in again)


def resolve(dns_name: str) -> str | None:
    try:
        return socket.getaddrinfo(dns_name, None, family=socket.AF_INET, type=socket.SOCK_STREAM)[0][4][0]
    except (OSError, IndexError):
        return None


class Directory:
    """This DC's own database (read and written beside the running samba, as samba-tool does)."""

    def __init__(self, config: DCConfig) -> None:
        self.config = config
        self.samdb = open_samdb_at(config.data_dir)
        self.dns_domain = config.realm.lower()

    def domain_controllers(self) -> list[DomainController]:
        import ldb
        from samba import WERRORError
        from samba.dcerpc import dnsp, misc
        from samba.ndr import ndr_unpack

        found = []
        for message in self.samdb.search(
            base=self.samdb.get_config_basedn(),
            scope=ldb.SCOPE_SUBTREE,
            expression="(objectClass=nTDSDSA)",
            attrs=["objectGUID"],
        ):
            name = str(message.dn.parent().get_rdn_value()).lower()
            guid = str(ndr_unpack(misc.GUID, message["objectGUID"][0]))
            try:
                _dn, records = self.samdb.dns_lookup(f"{name}.{self.dns_domain}")
            except (ldb.LdbError, WERRORError):  # no record of that name (yet: a DC joining writes its own)
                records = []
            addresses = tuple(sorted(str(r.data) for r in records if r.wType == dnsp.DNS_TYPE_A))
            found.append(DomainController(name, guid, addresses))
        return found

    def removed_servers(self) -> list[tuple[str, float]]:
        """(name, when) of each DC removed from the domain whose tombstone is kept (180 days)."""
        import ldb

        found = self.samdb.search(
            base=self.samdb.get_config_basedn(),
            scope=ldb.SCOPE_SUBTREE,
            expression="(&(objectClass=server)(isDeleted=TRUE))",
            attrs=["name", "whenChanged"],
            controls=["show_deleted:1"],
        )
        # a tombstone's name is "<name>\nDEL:<guid>"; whenChanged is when the deletion reached this DC
        return [(str(m["name"][0]).split("\n")[0].lower(), ldb.string_to_time(str(m["whenChanged"][0]))) for m in found]

    def set_address(self, name: str, address: str) -> None:
        """`name`'s A records become `address`; its other records stay."""
        import ldb
        from samba import WERRORError
        from samba.dcerpc import dnsp
        from samba.provision.sambadns import ARecord

        dns_name = f"{name}.{self.dns_domain}"
        try:
            dn, records = self.samdb.dns_lookup(dns_name)
        except (ldb.LdbError, WERRORError):  # no record of that name (left, or not yet written): a new one
            self.samdb.dns_replace(dns_name, [ARecord(address)])
            return
        kept = [r for r in records if r.wType != dnsp.DNS_TYPE_A]
        self.samdb.dns_replace_by_dn(dn, [*kept, ARecord(address)])


@dataclass
class PeerCheck:
    """One DC's view of the others; `check` runs with each health check, in the health thread."""

    config: DCConfig
    started: float = field(default_factory=time.time)  # when samba (re)started, about

    def samba_started(self) -> None:
        self.started = time.time()

    def check(self) -> str | None:
        """Fix the zone's addresses; returns why samba must restart, or None."""
        directory = Directory(self.config)
        controllers = directory.domain_controllers()
        current = {}
        for dc in controllers:
            if dc.name == self.config.hostname:
                current[dc.name] = self.config.host_ip
            elif service := address_template_for(dc.name, self.config.peer_address_template, self.config.hostname):
                current[dc.name] = resolve(service) or ""
        for name, address in stale_addresses(controllers, current).items():
            directory.set_address(name, address)
            print(f"es4ps-samba-dc: {name}.{directory.dns_domain} now points at {address} (it moved)", flush=True)
        others = [dc.name for dc in controllers if dc.name != self.config.hostname]
        again = replaced_since(self.started, others, directory.removed_servers())
        stale = [name for name in again if current.get(name) and _answers(current[name])]
        if not stale:
            return None
        return (
            f"{', '.join(stale)} joined the domain again with a new key: restarting samba to drop the Kerberos"
            " tickets it holds for the old one"
        )


def _answers(address: str) -> bool:
    from .probes import ldap_answers

    return ldap_answers(address, timeout_s=3)
