"""What the operator remembers of each child it watches, and what it decides from that.

The operator watches its children (label app.kubernetes.io/managed-by) and
keeps a small summary of each in memory (a kopf index), so deciding what to
apply, what to prune and what the status says needs no API request.

A child is applied again only when it is missing, when the manifest the
operator would write differs from the one it last wrote (a hash in an
annotation), or when someone else changed it (another field manager owns a
field outside the status). That keeps an idle domain at zero API requests and
still restores a hand-edited child.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from . import naming
from .builders.common import Manifest, desired_hash

# Managers that legitimately write our children outside their status subresource.
TOLERATED_MANAGERS = frozenset({naming.FIELD_MANAGER})


@dataclasses.dataclass(frozen=True)
class WatchedKind:
    api_version: str
    plural: str


# Every kind of child the operator writes, and so watches (docs/operator.md lists the same for RBAC).
WATCHED_KINDS = {
    "Secret": WatchedKind("v1", "secrets"),
    "ServiceAccount": WatchedKind("v1", "serviceaccounts"),
    "ConfigMap": WatchedKind("v1", "configmaps"),
    "Service": WatchedKind("v1", "services"),
    "StatefulSet": WatchedKind("apps/v1", "statefulsets"),
    "Deployment": WatchedKind("apps/v1", "deployments"),
    "Ingress": WatchedKind("networking.k8s.io/v1", "ingresses"),
    "NetworkPolicy": WatchedKind("networking.k8s.io/v1", "networkpolicies"),
    "Issuer": WatchedKind("cert-manager.io/v1", "issuers"),
    "Certificate": WatchedKind("cert-manager.io/v1", "certificates"),
    "Job": WatchedKind("batch/v1", "jobs"),
    "PodDisruptionBudget": WatchedKind("policy/v1", "poddisruptionbudgets"),
}


@dataclasses.dataclass(frozen=True)
class ChildSummary:
    """The parts of a child object the operator decides on."""

    kind: str
    name: str
    desired_hash: str | None
    changed_by_others: bool
    owner_uids: tuple[str, ...]
    deleting: bool
    # Certificates and Issuers: their Ready condition; StatefulSets and Deployments: Pods ready and up to date;
    # Jobs: succeeded.
    ready: bool
    message: str = ""
    ready_replicas: int = 0
    replicas: int = 0
    # StatefulSets: the images of their Pods' containers (a rolling upgrade follows them).
    images: tuple[str, ...] = ()
    # Jobs: failed for good (message says why).
    failed: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.name


def summarize(body: Mapping[str, Any]) -> ChildSummary:
    """Summarise a child as the API server returned it."""
    metadata = body.get("metadata", {})
    kind = body.get("kind", "")
    ready, message, ready_replicas, replicas = _readiness(kind, body)
    failed = kind == "Job" and _job_condition(body, "Failed") is not None
    if failed:
        message = _job_condition(body, "Failed").get("message", "") or "the Job failed"
    return ChildSummary(
        kind=kind,
        name=metadata.get("name", ""),
        desired_hash=(metadata.get("annotations") or {}).get(naming.DESIRED_HASH_ANNOTATION),
        changed_by_others=_changed_by_others(metadata.get("managedFields") or []),
        owner_uids=tuple(ref.get("uid", "") for ref in metadata.get("ownerReferences") or []),
        deleting=bool(metadata.get("deletionTimestamp")),
        ready=ready,
        message=message,
        ready_replicas=ready_replicas,
        replicas=replicas,
        images=_images(kind, body),
        failed=failed,
    )


def _images(kind: str, body: Mapping[str, Any]) -> tuple[str, ...]:
    if kind != "StatefulSet":
        return ()
    pod = ((body.get("spec") or {}).get("template") or {}).get("spec") or {}
    return tuple(container.get("image", "") for container in pod.get("containers") or [])


def _job_condition(body: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def _changed_by_others(managed_fields: Iterable[Mapping[str, Any]]) -> bool:
    return any(
        entry.get("manager") not in TOLERATED_MANAGERS and entry.get("subresource", "") != "status"
        for entry in managed_fields
    )


def _readiness(kind: str, body: Mapping[str, Any]) -> tuple[bool, str, int, int]:
    status = body.get("status") or {}
    if kind in ("Certificate", "Issuer"):
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Ready":
                return condition.get("status") == "True", condition.get("message", ""), 0, 0
        return False, "not processed by cert-manager yet", 0, 0
    if kind in ("StatefulSet", "Deployment"):
        replicas = (body.get("spec") or {}).get("replicas", 1)
        ready_replicas = status.get("readyReplicas", 0)
        current = (
            status.get("observedGeneration") == body["metadata"].get("generation")
            and status.get("updatedReplicas", 0) >= replicas
        )
        return current and ready_replicas >= replicas, "", ready_replicas, replicas
    if kind == "Job":
        return _job_condition(body, "Complete") is not None, "", 0, 0
    return True, "", 0, 0


def differs(manifest: Manifest, observed: ChildSummary) -> bool:
    """Whether the observed child shows another desired state than `manifest`.

    A change through a StatefulSet's scale subresource (`kubectl scale`) leaves no
    other field manager behind, so the replicas are compared themselves.
    """
    scaled = manifest["kind"] in ("StatefulSet", "Deployment") and observed.replicas != manifest["spec"].get(
        "replicas", 1
    )
    return observed.desired_hash != desired_hash(manifest) or scaled


def needs_apply(manifest: Manifest, observed: ChildSummary | None) -> bool:
    """Whether the child must be applied: missing, outdated or changed by someone else.

    A Job is written once: its Pod template cannot change, and a Job that ran
    is a record of what was done (the operator deletes it when its step is over).
    """
    if observed is None or observed.deleting:
        return True
    if manifest["kind"] == "Job":
        return False
    return differs(manifest, observed) or observed.changed_by_others


def prunable(
    observed: Iterable[ChildSummary], desired_keys: set[tuple[str, str]], owner_uid: str
) -> list[ChildSummary]:
    """Children the operator applied for this domain earlier but no longer wants (e.g. after scaling DCs down).

    Only objects carrying the operator's hash annotation and owned by this
    domain qualify: generated Secrets and cert-manager's Secrets never do.
    Jobs neither: they are wanted once, and deleted when their step is over
    (es4ps_operator.directory_plan, recovery).
    """
    return [
        child
        for child in observed
        if child.desired_hash is not None
        and owner_uid in child.owner_uids
        and child.key not in desired_keys
        and not child.deleting
        and child.kind != "Job"
    ]
