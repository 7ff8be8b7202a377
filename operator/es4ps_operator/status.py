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
from .children import ChildSummary, differs
from .domain import Domain

READY = "Ready"
CERTIFICATES_READY = "CertificatesReady"
BROKER_READY = "BrokerReady"
DIRECTORY_READY = "DirectoryReady"
PORTAL_READY = "PortalReady"
# Not part of Ready (a domain serves people while they are False), but what an on-call engineer watches.
REPLICATION_HEALTHY = "ReplicationHealthy"
BACKUPS_HEALTHY = "BackupsHealthy"
MONITORING_READY = "MonitoringReady"
# Only in a domain that joins an existing one (spec.directory.bootstrap.join).
JOINED = "Joined"
COMPONENTS = (CERTIFICATES_READY, BROKER_READY, DIRECTORY_READY, PORTAL_READY)
CONDITION_TYPES = (READY, *COMPONENTS, REPLICATION_HEALTHY, BACKUPS_HEALTHY, MONITORING_READY)
MONITORING_NOT_CONFIGURED = "NotConfigured"
# PortalReady's reason when the domain names no mail server.
MAIL_SERVER_MISSING = "MailServerMissing"

PHASE_PROGRESSING = "Progressing"
PHASE_READY = "Ready"
PHASE_FAILED = "Failed"
PHASE_PAUSED = "Paused"
# How many not-ready children a message names before it says "and N more".
MESSAGE_NAMES = 3


@dataclasses.dataclass(frozen=True)
class Check:
    """The outcome of one condition before it is dated (ready None: Unknown)."""

    ready: bool | None
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Findings:
    """What the status says beyond the children's readiness (each None when there is nothing to say)."""

    # ReplicationHealthy, BackupsHealthy and MonitoringReady.
    replication: Check | None = None
    backups: Check | None = None
    monitoring: Check | None = None
    # Joined (es4ps_operator.joining); None: the domain joins nothing.
    joined: Check | None = None
    # Overrides DirectoryReady: a restore or a join that cannot start or is running, a DC step that failed.
    directory: Check | None = None
    # Added to DirectoryReady's message: a DC leaving, an image roll-out.
    directory_notes: tuple[str, ...] = ()
    last_backup: str | None = None
    # Carried in status.directory (e.g. restored: the domain was created from its backup).
    directory_state: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The Pods that are not ready, by the StatefulSet that owns them (unready_pods): named in its condition.
    unready_pods: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    # Children kept as they are on purpose (the portal while the DCs roll): their current state counts.
    held: frozenset[tuple[str, str]] = frozenset()


def name_list(names: list[str], limit: int = MESSAGE_NAMES) -> str:
    """Names joined for a message, at most `limit` of them: "a, b, c and 4 more"."""
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {more} more" if more > 0 else "")


def _waiting_for(what: str, names: list[str], total: int) -> str:
    return f"{total - len(names)} of {total} {what} ready; waiting for {name_list(names)}"


def unready_pods(pods: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """The Pods (as the API returns them) whose Ready condition is not True, by the StatefulSet that owns them:
    "acme-broker-2 on node3", or "acme-dc1-0 not scheduled". A member on a lost node is named so."""
    found: dict[str, list[str]] = {}
    for pod in pods:
        metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
        owners = [o.get("name") for o in metadata.get("ownerReferences") or [] if o.get("kind") == "StatefulSet"]
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        if owners and not ready:
            node = (pod.get("spec") or {}).get("nodeName")
            found.setdefault(owners[0], []).append(
                f"{metadata.get('name')} " + (f"on {node}" if node else "not scheduled")
            )
    return {owner: tuple(sorted(names)) for owner, names in found.items()}


class Observed:
    """The observed children, each with whether it still shows an older desired state than the one wanted now."""

    def __init__(
        self,
        desired: DesiredState,
        children: Iterable[ChildSummary],
        unready: Mapping[str, tuple[str, ...]] | None = None,
        held: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        self._wanted = {(m["kind"], m["metadata"]["name"]): m for m in desired.manifests()}
        self._held = held
        self._children = {child.key: child for child in children if not child.deleting}
        self.unready = unready or {}

    def get(self, key: tuple[str, str]) -> tuple[ChildSummary | None, bool]:
        child, wanted = self._children.get(key), self._wanted.get(key)
        if key in self._held:
            return child, False
        return child, child is not None and (wanted is None or differs(wanted, child))

    def ready_pods(self, statefulset_names: list[str]) -> int:
        """Pods ready, one per StatefulSet at most (for "1/1" domain controllers)."""
        counts = [self.get(("StatefulSet", name)) for name in statefulset_names]
        return sum(min(child.ready_replicas, 1) for child, outdated in counts if child and not outdated)


def _observed_state(child: ChildSummary | None, outdated: bool) -> str | None:
    """Why a child does not count yet, or None when what is observed is the desired state."""
    if child is None:
        return "not created yet"
    if outdated:
        # Just applied, not seen back yet: the old object must not make the new generation look ready.
        return "being updated"
    return None


def check_certificates(certificate_names: list[str], observed: Observed) -> Check:
    pending = []
    for name in certificate_names:
        child, outdated = observed.get(("Certificate", name))
        why = _observed_state(child, outdated) or (None if child.ready else child.message or "not issued yet")
        if why:
            pending.append(f"{name} ({why})")
    if not pending:
        return Check(True, "Issued", f"all {len(certificate_names)} certificates are issued")
    return Check(False, "Issuing", _waiting_for("certificates", pending, len(certificate_names)))


def check_statefulsets(what: str, names: list[str], observed: Observed) -> Check:
    pending = []
    for name in names:
        child, outdated = observed.get(("StatefulSet", name))
        why = _observed_state(child, outdated) or (
            None if child.ready else f"{child.ready_replicas}/{child.replicas} Pods ready and up to date"
        )
        if why and observed.unready.get(name):
            why += f"; not ready: {name_list(list(observed.unready[name]))}"
        if why:
            pending.append(f"{name} ({why})")
    if not pending:
        return Check(True, "Running", f"all {len(names)} {what} ready")
    reason = "Creating" if any(observed.get(("StatefulSet", name))[0] is None for name in names) else "Starting"
    return Check(False, reason, _waiting_for(what, pending, len(names)))


def check_portal(domain: Domain, observed: Observed) -> Check:
    """The portal's StatefulSet, and a mail server to send through: without one nobody can confirm an address."""
    check = check_statefulsets("portal StatefulSets", [naming.portal(domain)], observed)
    if domain.portal.smtp is not None:
        return check
    message = "spec.portal.smtp is not set: the portal sends no mail, so nobody can confirm an address"
    return Check(False, MAIL_SERVER_MISSING, message if check.ready else f"{message}; {check.message}")


def compute_status(
    domain: Domain,
    desired: DesiredState,
    observed_children: Iterable[ChildSummary],
    previous: Mapping[str, Any] | None,
    applied_generation: int | None,
    apply_error: str | None,
    now: str,
    findings: Findings = Findings(),
) -> dict[str, Any]:
    """The whole status of `domain` from what is observed; `now` dates conditions that change."""
    observed = Observed(desired, observed_children, findings.unready_pods, findings.held)
    certificate_names = [m["metadata"]["name"] for m in desired.applied["certificates"] if m["kind"] == "Certificate"]
    dc_count = 0 if domain.directory.external is not None else domain.directory.replicas
    dc_names = [naming.dc(domain, index) for index in range(dc_count)]
    directory = findings.directory or check_statefulsets("domain controllers", dc_names, observed)
    if findings.directory_notes:
        directory = dataclasses.replace(directory, message=" ".join([directory.message, *findings.directory_notes]))
    checks = {
        CERTIFICATES_READY: check_certificates(certificate_names, observed),
        BROKER_READY: check_statefulsets("broker StatefulSets", [naming.broker(domain)], observed),
        DIRECTORY_READY: directory,
        PORTAL_READY: check_portal(domain, observed),
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

    checks[REPLICATION_HEALTHY] = findings.replication or Check(None, "NotReported", "not reported yet")
    checks[BACKUPS_HEALTHY] = findings.backups or Check(None, "NotConfigured", "spec.directory.backup is not set")
    checks[MONITORING_READY] = findings.monitoring or Check(None, "NotReported", "not checked yet")
    kinds = (*CONDITION_TYPES, JOINED) if findings.joined else CONDITION_TYPES
    if findings.joined:
        checks[JOINED] = findings.joined

    previous = previous or {}
    previous_conditions = {c.get("type"): c for c in previous.get("conditions") or []}
    generation = applied_generation if applied_generation is not None else previous.get("observedGeneration")
    status: dict[str, Any] = {
        "phase": phase,
        "portalURL": domain.portal_url,
        "domainControllers": f"{observed.ready_pods(dc_names)}/{len(dc_names)}",
        "conditions": [
            _condition(kind, checks[kind], previous_conditions.get(kind), generation, now) for kind in kinds
        ],
    }
    if generation is not None:
        status["observedGeneration"] = generation
    if findings.last_backup:
        status["lastBackup"] = findings.last_backup
    directory_state = {**(previous.get("directory") or {}), **findings.directory_state}
    if directory_state:
        status["directory"] = directory_state
    return status


def _condition(
    kind: str, check: Check, previous: Mapping[str, Any] | None, generation: int | None, now: str
) -> dict[str, Any]:
    status = {True: "True", False: "False", None: "Unknown"}[check.ready]
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
