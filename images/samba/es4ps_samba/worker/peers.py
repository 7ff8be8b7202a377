"""The domain's other DCs, asked before the worker adds an account or a computer: one create, one object.

A name (sAMAccountName) is unique on one DC only: a DC checks its own copy
when an object is added, and replication later keeps both objects of one name
(the second one's CN renamed `CNF:...`). So a create applied on two DCs before
either has replicated the other's makes two objects. One create task reaches
two workers when its acknowledgement is lost with a broker Pod (the broker
delivers it again, to any worker), or when the portal publishes it again
because the broker's confirmation was lost (then it is not even marked
redelivered). Each worker's record of applied tasks (`applied`) is its own
DC's, so it cannot stop the second create; asking the other DCs can.

Before an add, the worker asks each other DC of the domain (the NTDS settings
objects of the configuration partition; their addresses are the A records of
the domain's zone, the ones replication itself uses and every DC keeps
current, es4ps_samba.dc.peers) whether it holds the name, over LDAP as the
worker's own account: signed and sealed, and a lookup carries no secret. A DC
that holds it makes the create wait until that object has replicated here;
then the create meets the name on its own DC and the usual rules decide (this
very task again, an account to take on, or refused: `directory`). Nothing is
ever written from what another DC's copy says.

A DC that does not answer (`ANSWER_TIMEOUT_S`: a deleted Pod's address, a
DC that is down or hangs) cannot be asked. A first delivery goes on without it: it
can only have held the task if it was delivered twice, and a DC that is away
for maintenance must not delay every registration. A delivery that may have
reached another worker before (redelivered, or retried) waits for it, like a
task waits for its own DC, for a few minutes (`must_answer`, decided by the
handler); then it goes on too, so a DC gone for good never blocks
registrations.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import ldb

from ..samdb import open_remote_samdb
from .errors import DirectoryUnavailable, NotFoundYet

logger = logging.getLogger(__name__)

LDAP_PORT = 389
# How long a DC has to answer (connect, and read its root DSE) before it counts as one that cannot be asked.
ANSWER_TIMEOUT_S = 2.0
# An anonymous search of the root DSE for no attribute (RFC 4511 in BER: message 1, base "", scope base,
# filter (objectClass=*), attributes "1.1"): what any DC answers without a bind.
_ROOT_DSE_REQUEST = (
    bytes.fromhex("30 2a 02 01 01 63 25 04 00 0a 01 00 0a 01 00 02 01 00 02 01 00 01 01 00 87 0b")
    + b"objectClass"
    + bytes.fromhex("30 05 04 03")
    + b"1.1"
)


class PeerUnreachable(DirectoryUnavailable):
    """Another DC of the domain cannot be asked whether it holds a name (retried like an unavailable DC)."""


def holds(samdb, name: str) -> bool:
    """Whether the DC of `samdb` holds an object whose sAMAccountName is `name`, anywhere in the domain."""
    found = samdb.search(
        base=samdb.domain_dn(),
        scope=ldb.SCOPE_SUBTREE,
        expression=f"(sAMAccountName={ldb.binary_encode(name)})",
        attrs=["1.1"],
    )
    return len(found) > 0


def _answers(address: str) -> bool:
    """Whether the DC at `address` answers an LDAP request within ANSWER_TIMEOUT_S: an address nobody holds
    and a DC that accepts connections but hangs both say no, where Samba's LDAP client waits 60 s."""
    try:
        with socket.create_connection((address, LDAP_PORT), timeout=ANSWER_TIMEOUT_S) as connection:
            connection.settimeout(ANSWER_TIMEOUT_S)
            connection.sendall(_ROOT_DSE_REQUEST)
            return connection.recv(1)[:1] == b"\x30"  # the SEQUENCE of an LDAP message
    except OSError:
        return False


class Peers:
    """The other DCs of the domain, as the worker's account (one connection per DC, reopened when it breaks)."""

    def __init__(self, realm: str, netbios_name: str, account: str, password: str) -> None:
        self.realm = realm
        self.netbios_name = netbios_name
        self.account = account
        self._password = password
        self._connections: dict[str, object] = {}
        # Called with each DC a create went on without (the worker counts them).
        self.on_unasked: Callable[[str], None] = lambda _dc: None

    def addresses(self, samdb) -> dict[str, str]:
        """{name: address} of the domain's other DCs, as the DC of `samdb` knows them ("" for one without an
        address in the zone)."""
        own = str(samdb.get_dsServiceName()).casefold()
        found = samdb.search(
            base=samdb.get_config_basedn(), scope=ldb.SCOPE_SUBTREE, expression="(objectClass=nTDSDSA)", attrs=["1.1"]
        )
        dns_domain = self.realm.lower()
        addresses = {}
        for message in found:
            if str(message.dn).casefold() == own:
                continue
            name = str(message.dn.parent().get_rdn_value()).lower()
            addresses[name] = _zone_address(samdb, f"{name}.{dns_domain}")
        return addresses

    def first_here(self, samdb, name: str, must_answer: bool, reason: str) -> None:
        """Before adding `name` on the DC of `samdb`: raise NotFoundYet (with `reason` when retries run out) while
        another DC holds that name and this one has not received it yet."""
        if holds(samdb, name):
            return  # held here: the add meets it, and the rules of a name taken decide
        holder = self.holder(samdb, name, must_answer)
        if holder is not None:
            raise NotFoundYet(f"{holder} holds {name}, which has not replicated here yet", reason=reason)

    def holder(self, samdb, name: str, must_answer: bool) -> str | None:
        """The first other DC that holds an object whose sAMAccountName is `name`, or None.

        A DC that cannot be asked raises PeerUnreachable when `must_answer`, else it is left out (logged).
        """
        for dc, address in sorted(self.addresses(samdb).items()):
            try:
                held = self._holds(address, name)
            except PeerUnreachable:
                if must_answer:
                    raise PeerUnreachable(f"{dc} cannot be asked whether it holds {name}") from None
                logger.warning("%s cannot be asked whether it holds %s: the create goes on without it", dc, name)
                self.on_unasked(dc)
                continue
            if held:
                return dc
        return None

    def _holds(self, address: str, name: str) -> bool:
        if not address or not _answers(address):
            raise PeerUnreachable(address)
        peer = self._connections.get(address)
        if peer is not None:
            try:
                return holds(peer, name)
            except ldb.LdbError:  # the kept connection broke since its last use: a new one below
                self._connections.pop(address, None)
        try:
            peer = open_remote_samdb(f"ldap://{address}", self.realm, self.netbios_name, self.account, self._password)
            held = holds(peer, name)
        except ldb.LdbError as exc:
            raise PeerUnreachable(f"{address}: LDAP error {exc.args[0]}") from None
        self._connections[address] = peer
        return held


def _zone_address(samdb, dns_name: str) -> str:
    """The first A record of `dns_name` in the zone as the DC of `samdb` holds it, or ""."""
    from samba import WERRORError
    from samba.dcerpc import dnsp

    try:
        _dn, records = samdb.dns_lookup(dns_name)
    except (ldb.LdbError, WERRORError):
        return ""
    addresses = sorted(str(r.data) for r in records if r.wType == dnsp.DNS_TYPE_A)
    return addresses[0] if addresses else ""
