"""A domain joining an existing Samba AD domain (`spec.directory.bootstrap.join`), pure decisions.

Before any DC or portal Pod exists, the join-check Job reads the existing
domain through the server named, with the password given
(es4ps_samba.dc.existing; it writes nothing there). Until it says the join
may go ahead no DC, portal or file server is created (the broker, the
certificates and the policies are, as for any domain): a server that does not
answer, another realm, a refused password, a DC name already taken leave the
domain with Joined and DirectoryReady False naming the reason, and the
existing directory as it was. A refused check is not retried on its own (a wrong password tried
again and again could lock the account out): deleting the Job checks again.

Once the check passed, dc0 joins the existing domain as an additional DC and
the others join dc0. Joined is True once dc0 serves, and
`status.directory.joined` records it: the check never runs again for that
domain. Replication with the existing DCs is ReplicationHealthy's, as between
the domain's own.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from . import naming
from .builders.common import Manifest
from .builders.jobs import join_check_job
from .children import ChildSummary
from .config import OperatorConfig
from .domain import Domain
from .kube import StepEnd
from .status import Check

# What the check says when the join may go ahead (es4ps_samba.dc.existing.JOINABLE).
JOINABLE = "Joinable"


@dataclasses.dataclass(frozen=True)
class JoinPlan:
    # False until the check passed: no DC or portal StatefulSet yet.
    workloads: bool = True
    jobs: tuple[Manifest, ...] = ()
    # DirectoryReady while the check runs or after it refused.
    check: Check | None = None
    # The Joined condition; None: a domain that joins nothing.
    joined: Check | None = None
    # Recorded in status.directory.
    state: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # The check's Job, once dc0 exists.
    finished_jobs: tuple[str, ...] = ()


def check_result(ends: list[StepEnd]) -> dict[str, str]:
    """What the check wrote ({"reason", "message"}, newest Pod first); {} when it wrote nothing readable."""
    for end in ends:
        try:
            result = json.loads(end.message.strip().splitlines()[-1])
        except (ValueError, IndexError):
            continue
        if isinstance(result, dict) and isinstance(result.get("reason"), str):
            return {"reason": result["reason"], "message": str(result.get("message", ""))}
    return {}


def needs_result(domain: Domain, previous_status: Mapping[str, Any], observed: Mapping[tuple[str, str], Any]) -> bool:
    """Whether the check's Job has ended and its result is still to be read (an API read, so only then)."""
    job = observed.get(("Job", naming.join_check_job(domain)))
    joined = (previous_status.get("directory") or {}).get("joined")
    return bool(domain.directory.join_server and job and (job.ready or job.failed) and not joined)


def plan_join(
    domain: Domain,
    config: OperatorConfig,
    previous_status: Mapping[str, Any],
    observed: Mapping[tuple[str, str], ChildSummary],
    result: Mapping[str, str],
) -> JoinPlan:
    """`result`: what the check's Job wrote, once it ended (check_result)."""
    server = domain.directory.join_server
    if server is None:
        return JoinPlan()
    name, dc0 = naming.join_check_job(domain), naming.dc_hostname(domain, 0)
    job = observed.get(("Job", name))
    statefulset = observed.get(("StatefulSet", naming.dc(domain, 0)))
    finished = (name,) if job is not None else ()
    if (previous_status.get("directory") or {}).get("joined") or (statefulset is not None and statefulset.ready):
        message = f"{dc0} joined {domain.realm} through {server}; replication: see ReplicationHealthy"
        return JoinPlan(joined=Check(True, "Joined", message), state={"joined": server}, finished_jobs=finished)
    if statefulset is not None:  # the check passed: dc0 is joining
        message = f"{dc0} is joining {domain.realm} through {server}"
        return JoinPlan(joined=Check(False, "Joining", message), finished_jobs=finished)
    manifest = join_check_job(domain, config)
    if job is None or not (job.ready or job.failed):
        message = f"{name} reads the existing domain {domain.realm} through {server} before joining it"
        check = Check(False, "CheckingJoin", message)
        return JoinPlan(workloads=False, jobs=(manifest,), check=check, joined=check)
    if job.ready:  # the check exits 0 only when the join may go ahead
        said = f": {result['message']}" if result.get("reason") == JOINABLE else ""
        message = f"{dc0} is joining {domain.realm} through {server}{said}"
        return JoinPlan(jobs=(manifest,), joined=Check(False, "Joining", message))
    # Refused (the Job stays, so it is not run again on its own).
    reason = result.get("reason") or "JoinCheckFailed"
    why = result.get("message") or job.message or "the check wrote no result"
    check = Check(False, reason, f"{why}; nothing was created (delete the Job {name} to check again)")
    return JoinPlan(workloads=False, jobs=(manifest,), check=check, joined=check)
