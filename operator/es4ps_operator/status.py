"""The status of a domain, derived from its children: a pure function.

Conditions follow the Kubernetes shape (type, status, reason, message,
lastTransitionTime, observedGeneration); a condition keeps its
lastTransitionTime while its status does not change, so writing the same
status twice is a no-op.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from . import naming
from .builders import DesiredState
from .children import ChildSummary
from .domain import Domain

READY = "Ready"
CERTIFICATES_READY = "CertificatesReady"
BROKER_READY = "BrokerReady"
DIRECTORY_READY = "DirectoryReady"
PORTAL_READY = "PortalReady"
CONDITION_TYPES = (READY, CERTIFICATES_READY, BROKER_READY, DIRECTORY_READY, PORTAL_READY)

PHASE_PROGRESSING = "Progressing"
PHASE_READY = "Ready"
PHASE_FAILED = "Failed"
PHASE_PAUSED = "Paused"
# How many not-ready children a message names before it says "and N more".
MESSAGE_NAMES = 3


@dataclasses.dataclass(frozen=True)
class Check:
    """The outcome of one condition before it is dated."""

    ready: bool
    reason: str
    message: str


def name_list(names: list[str], limit: int = MESSAGE_NAMES) -> str:
    """Names joined for a message, at most `limit` of them: "a, b, c and 4 more"."""
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {more} more" if more > 0 else "")


def _waiting_for(what: str, names: list[str], total: int) -> str:
    return f"{total - len(names)} of {total} {what} ready; waiting for {name_list(names)}"


def check_certificates(certificate_names: list[str], observed: Mapping[tuple[str, str], ChildSummary]) -> Check:
    pending = []
    for name in certificate_names:
        child = observed.get(("Certificate", name))
        if child is None or not child.ready:
            pending.append(name if child is None or not child.message else f"{name} ({child.message})")
    if not pending:
        return Check(True, "Issued", f"all {len(certificate_names)} certificates are issued")
    return Check(False, "Issuing", _waiting_for("certificates", pending, len(certificate_names)))


def check_statefulsets(what: str, names: list[str], observed: Mapping[tuple[str, str], ChildSummary]) -> Check:
    pending = [name for name in names if not (child := observed.get(("StatefulSet", name))) or not child.ready]
    if not pending:
        return Check(True, "Running", f"{what} ready")
    missing = [name for name in names if ("StatefulSet", name) not in observed]
    reason = "Creating" if missing else "Starting"
    return Check(False, reason, _waiting_for(f"{what} StatefulSets", pending, len(names)))


def ready_pods(names: list[str], observed: Mapping[tuple[str, str], ChildSummary]) -> int:
    return sum(min(child.ready_replicas, 1) for name in names if (child := observed.get(("StatefulSet", name))))


def compute_status(
    domain: Domain,
    desired: DesiredState,
    observed_children: Iterable[ChildSummary],
    previous: Mapping[str, Any] | None,
    applied_generation: int | None,
    apply_error: str | None,
    now: str,
) -> dict[str, Any]:
    """The whole status of `domain` from what is observed; `now` dates conditions that change."""
    observed = {child.key: child for child in observed_children if not child.deleting}
    certificate_names = [m["metadata"]["name"] for m in desired.applied["certificates"] if m["kind"] == "Certificate"]
    dc_names = [naming.dc(domain, index) for index in range(domain.directory.replicas)]
    checks = {
        CERTIFICATES_READY: check_certificates(certificate_names, observed),
        BROKER_READY: check_statefulsets("broker", [naming.broker(domain)], observed),
        DIRECTORY_READY: check_statefulsets("domain controllers", dc_names, observed),
        PORTAL_READY: check_statefulsets("portal", [naming.portal(domain)], observed),
    }
    not_ready = [kind for kind, check in checks.items() if not check.ready]
    if apply_error:
        checks[READY] = Check(False, "ApplyFailed", apply_error)
    elif not_ready:
        checks[READY] = Check(False, "ComponentsNotReady", "not ready: " + ", ".join(not_ready))
    else:
        checks[READY] = Check(
            True, "AllComponentsReady", "the portal, the broker and every domain controller are ready"
        )

    if domain.paused:
        phase = PHASE_PAUSED
    elif apply_error:
        phase = PHASE_FAILED
    elif checks[READY].ready:
        phase = PHASE_READY
    else:
        phase = PHASE_PROGRESSING

    previous = previous or {}
    previous_conditions = {c.get("type"): c for c in previous.get("conditions") or []}
    generation = applied_generation if applied_generation is not None else previous.get("observedGeneration")
    status: dict[str, Any] = {
        "phase": phase,
        "portalURL": domain.portal_url,
        "domainControllers": f"{ready_pods(dc_names, observed)}/{len(dc_names)}",
        "conditions": [
            _condition(kind, checks[kind], previous_conditions.get(kind), generation, now) for kind in CONDITION_TYPES
        ],
    }
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def _condition(
    kind: str, check: Check, previous: Mapping[str, Any] | None, generation: int | None, now: str
) -> dict[str, Any]:
    status = "True" if check.ready else "False"
    unchanged = previous is not None and previous.get("status") == status
    condition: dict[str, Any] = {
        "type": kind,
        "status": status,
        "reason": check.reason,
        "message": check.message,
        "lastTransitionTime": previous["lastTransitionTime"] if unchanged else now,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition
