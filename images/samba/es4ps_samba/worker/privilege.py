"""The check the worker makes before it takes a task: it refuses to run with more rights than its job needs.

The worker's account needs rights on the managed OU only (es4ps_samba.dc.access
lists them). An account that can do more, a member of Domain Admins or of a
built-in operators' group, or one that may create objects or write attributes
outside that OU, would turn a flaw in the worker into a flaw of the whole
domain: with a directory the organisation already runs (external mode) it is
easy to hand the worker such an account by mistake, so the worker refuses it.

What the directory itself says is read, as the account (nothing is written):

- `tokenGroups` of the root DSE: every group the bound account's token holds,
  nested ones included (Microsoft AD and Samba both answer it);
- `allowedChildClassesEffective` and `allowedAttributesEffective` of the
  domain's head and its well-known containers (CN=Users, CN=Computers) and of
  the built-in Administrator: what the account may create or write there,
  which must be nothing (the directory computes both from its ACLs).
"""

from __future__ import annotations

from dataclasses import dataclass

import ldb
from samba.dcerpc import security
from samba.ndr import ndr_unpack

from ..managed import ADMINISTRATOR_RID, privileged_memberships

# Where an account with no business outside its OU must be able to create and write nothing.
OUTSIDE_CONTAINERS = ("CN=Users", "CN=Computers")


@dataclass(frozen=True)
class TooManyRights(Exception):
    """The account can do more than the worker's job: `problems` says what (no secret in it)."""

    problems: tuple[str, ...]

    def __str__(self) -> str:
        return "; ".join(self.problems)


def _token_sids(samdb) -> list[str]:
    found = samdb.search(base="", scope=ldb.SCOPE_BASE, attrs=["tokenGroups"])
    return [str(ndr_unpack(security.dom_sid, value)) for value in found[0].get("tokenGroups", [])]


def _effective_rights(samdb, dn: str) -> list[str]:
    """What the bound account may create below `dn` or write on it (the directory's own computation)."""
    try:
        found = samdb.search(
            base=dn,
            scope=ldb.SCOPE_BASE,
            attrs=["allowedChildClassesEffective", "allowedAttributesEffective"],
        )
    except ldb.LdbError as exc:
        if exc.args[0] == ldb.ERR_NO_SUCH_OBJECT:  # a directory without this container
            return []
        raise
    rights = []
    for attribute, what in (("allowedChildClassesEffective", "create"), ("allowedAttributesEffective", "write")):
        values = sorted(str(value) for value in found[0].get(attribute, []))
        if values:
            rights.append(f"may {what} {', '.join(values[:5])}{' ...' if len(values) > 5 else ''} in {dn}")
    return rights


def _administrator_dn(samdb, domain_sid: str) -> str | None:
    found = samdb.search(
        base=str(samdb.domain_dn()),
        scope=ldb.SCOPE_SUBTREE,
        expression=f"(objectSid={domain_sid}-{ADMINISTRATOR_RID})",
        attrs=["cn"],
    )
    return str(found[0].dn) if len(found) else None


def check_least_privilege(samdb) -> None:
    """Raise TooManyRights when the bound account holds any right beyond the managed OU's (module docstring)."""
    domain_dn = str(samdb.domain_dn())
    domain_sid = str(samdb.get_domain_sid())
    problems = [f"holds {name}" for name in privileged_memberships(_token_sids(samdb), domain_sid)]
    outside = [domain_dn, *(f"{container},{domain_dn}" for container in OUTSIDE_CONTAINERS)]
    administrator = _administrator_dn(samdb, domain_sid)
    for dn in [*outside, *([administrator] if administrator else [])]:
        problems.extend(_effective_rights(samdb, dn))
    if problems:
        raise TooManyRights(tuple(problems))
