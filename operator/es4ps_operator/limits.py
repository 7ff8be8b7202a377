"""The namespace's LimitRanges against the Pods a domain asks for: refused before anything is written.

A Pod above a LimitRange's maximum (or below its minimum) is refused by the
API server when its controller creates it, so a StatefulSet would sit at zero
Pods with the reason only in its events, and a Job would never start. The
operator reads the LimitRanges before it writes a workload and, when one would
refuse it, writes nothing and says which field asks for what (Ready=False,
ApplyFailed), like an image from a registry it does not allow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from lightkube.utils.quantity import parse_quantity

from . import naming

# Where the domain sets each component's resources.
RESOURCE_FIELDS = {
    naming.PORTAL: "spec.portal.resources",
    naming.BROKER: "spec.broker.resources",
    naming.DIRECTORY: "spec.directory.resources",
    naming.BACKUP: "spec.directory.backup.resources",
    naming.MAINTENANCE: "spec.maintenance.resources",
}
WORKLOADS = ("StatefulSet", "Deployment", "Job")


def _quantity(value: Any) -> Decimal:
    return parse_quantity(str(value))


def _shown(resource: str, value: Decimal) -> str:
    """A quantity as people write it: memory in Mi when whole, else the plain number."""
    if resource == "memory" and value == value.to_integral_value() and int(value) % (1 << 20) == 0:
        return f"{int(value) >> 20}Mi"
    return f"{value.normalize()}"


def _containers(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*pod_spec.get("initContainers", ()), *pod_spec.get("containers", ())]


def _container_problems(container: Mapping[str, Any], item: Mapping[str, Any]) -> Iterable[str]:
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    for resource, maximum in (item.get("max") or {}).items():
        asked = limits.get(resource, requests.get(resource))
        if asked is not None and _quantity(asked) > _quantity(maximum):
            yield f"container {container['name']} asks for {resource} {asked}, above the maximum {maximum}"
    for resource, minimum in (item.get("min") or {}).items():
        asked = requests.get(resource, limits.get(resource))
        if asked is not None and _quantity(asked) < _quantity(minimum):
            yield f"container {container['name']} asks for {resource} {asked}, below the minimum {minimum}"


def _pod_problems(pod_spec: Mapping[str, Any], item: Mapping[str, Any]) -> Iterable[str]:
    # Init containers run one at a time: a Pod holds the largest of them or the sum of the others.
    for resource, maximum in (item.get("max") or {}).items():
        asked = [
            _quantity(c["resources"]["limits"][resource])
            for c in pod_spec.get("containers", ())
            if resource in (c.get("resources") or {}).get("limits", {})
        ]
        steps = [
            _quantity(c["resources"]["limits"][resource])
            for c in pod_spec.get("initContainers", ())
            if resource in (c.get("resources") or {}).get("limits", {})
        ]
        total = max([sum(asked, Decimal(0)), *steps])
        if total > _quantity(maximum):
            yield f"its Pod asks for {resource} {_shown(resource, total)} in all, above the maximum {maximum}"


def refused_resources(manifests: Iterable[Mapping[str, Any]], limit_ranges: Iterable[Mapping[str, Any]]) -> str | None:
    """Why the namespace's LimitRanges would refuse a workload's Pods, naming the field to change; else None."""
    limit_ranges = list(limit_ranges)
    for manifest in manifests:
        if manifest["kind"] not in WORKLOADS:
            continue
        pod_spec = manifest["spec"]["template"]["spec"]
        component = manifest["metadata"]["labels"].get(naming.COMPONENT_LABEL, "")
        for limit_range in limit_ranges:
            for item in (limit_range.get("spec") or {}).get("limits") or ():
                if item.get("type") == "Container":
                    problems = [p for c in _containers(pod_spec) for p in _container_problems(c, item)]
                elif item.get("type") == "Pod":
                    problems = list(_pod_problems(pod_spec, item))
                else:
                    continue
                if problems:
                    where = RESOURCE_FIELDS.get(component, "the domain's resources")
                    return (
                        f"{manifest['kind']} {manifest['metadata']['name']}: {problems[0]} of the LimitRange "
                        f"{limit_range['metadata']['name']} in this namespace; change {where} or the LimitRange "
                        "(nothing was applied)"
                    )
    return None
