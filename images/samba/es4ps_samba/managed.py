"""What the DC's entrypoint prepares in the directory and the worker relies on, named once for both.

- `BINDING_ATTRIBUTE`: where each managed account carries its binding line
  (es4ps_samba.worker.binding). No property set SELF may write holds it, and
  the managed OU denies writing it to everyone but the worker's account
  (es4ps_samba.dc.access).
- `DELETED_REGISTRATIONS`: a container under the managed OU holding one
  object per deleted registration (its name is the registration's id), so that
  every DC's worker refuses a create of that registration, however late it
  comes and whichever DC it reaches. Only the worker's account may create
  objects there.
- `privileged_memberships`: the groups whose members hold rights over the
  whole domain: the worker refuses to run as a member, and an administrator's
  step never moves a member into the managed OU (es4ps_samba.dc.legacy_accounts).
"""

from __future__ import annotations

BINDING_ATTRIBUTE = "adminDescription"
# Relative to the managed OU.
DELETED_REGISTRATIONS = "CN=Deleted registrations"
# The object class of a deleted registration's record: no security principal (it takes no RID).
DELETED_REGISTRATION_CLASS = "container"

# Groups whose members hold rights over the whole domain or forest (MS-ADTS 6.1.1.6, well-known SIDs).
PRIVILEGED_DOMAIN_RIDS = {
    512: "Domain Admins",
    516: "Domain Controllers",
    518: "Schema Admins",
    519: "Enterprise Admins",
    520: "Group Policy Creator Owners",
    521: "Read-only Domain Controllers",
    526: "Key Admins",
    527: "Enterprise Key Admins",
}
PRIVILEGED_BUILTIN_SIDS = {
    "S-1-5-32-544": "Administrators",
    "S-1-5-32-548": "Account Operators",
    "S-1-5-32-549": "Server Operators",
    "S-1-5-32-550": "Print Operators",
    "S-1-5-32-551": "Backup Operators",
    "S-1-5-32-552": "Replicator",
}
# The built-in Administrator account's RID: it must never be the worker's account.
ADMINISTRATOR_RID = 500


def privileged_memberships(token: list[str], domain_sid: str) -> list[str]:
    """The names of the privileged groups (and the Administrator account) among the SIDs of a token."""
    names = []
    for sid in token:
        if sid in PRIVILEGED_BUILTIN_SIDS:
            names.append(PRIVILEGED_BUILTIN_SIDS[sid])
            continue
        prefix, _, rid = sid.rpartition("-")
        if prefix == domain_sid and rid.isdigit():
            if int(rid) in PRIVILEGED_DOMAIN_RIDS:
                names.append(PRIVILEGED_DOMAIN_RIDS[int(rid)])
            elif int(rid) == ADMINISTRATOR_RID:
                names.append("the built-in Administrator")
    return sorted(set(names))
