"""A component's Pod overrides as the CRD's override block states them (spec.portal, spec.broker, ...).

The block is written once in the CRD (`podOverrides`) and taken by every
component: the portal, the broker, the DCs, the backup Jobs and the
maintenance Jobs. builders.common.pod_template applies it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Placement:
    """A component's Pod overrides (the CRD's override block): where its Pods run, with what, labelled how."""

    priority_class: str | None
    # None: the operator's default spread (over nodes, as far as the cluster allows).
    topology_spread: tuple[dict[str, Any], ...] | None
    # Requests and limits of the main container, merged over the operator's defaults ({} : the defaults).
    resources: dict[str, dict[str, Any]]
    node_selector: dict[str, str]
    tolerations: tuple[dict[str, Any], ...]
    affinity: dict[str, Any]
    image_pull_secrets: tuple[str, ...]
    pod_annotations: dict[str, str]
    pod_labels: dict[str, str]
    # Annotations of a ServiceAccount of the component's own; None: none (the namespace's default account).
    service_account_annotations: dict[str, str] | None


def read_placement(component: Mapping[str, Any] | None) -> Placement:
    """The override block of a component's spec (absent: no override)."""
    component = component or {}
    spread = component.get("topologySpreadConstraints")
    account = component.get("serviceAccount")
    return Placement(
        priority_class=component.get("priorityClassName"),
        topology_spread=tuple(dict(c) for c in spread) if spread is not None else None,
        resources={kind: dict(values) for kind, values in (component.get("resources") or {}).items()},
        node_selector=dict(component.get("nodeSelector") or {}),
        tolerations=tuple(dict(t) for t in component.get("tolerations") or ()),
        affinity=dict(component.get("affinity") or {}),
        image_pull_secrets=tuple(secret["name"] for secret in component.get("imagePullSecrets") or ()),
        pod_annotations=dict(component.get("podAnnotations") or {}),
        pod_labels=dict(component.get("podLabels") or {}),
        service_account_annotations=dict(account["annotations"]) if account else None,
    )
