"""Reading the manifests the operator's builders return, in tests: by kind and name, a Pod's containers and env."""

from __future__ import annotations

from typing import Any


def by_kind_name(desired) -> dict[tuple[str, str], dict[str, Any]]:
    """Every manifest of a desired state, by (kind, name)."""
    return {(m["kind"], m["metadata"]["name"]): m for m in desired.manifests()}


def statefulset(desired, name: str) -> dict[str, Any]:
    return by_kind_name(desired)[("StatefulSet", name)]


def containers(sts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A StatefulSet's (or Job's) Pod containers by name."""
    return {c["name"]: c for c in sts["spec"]["template"]["spec"]["containers"]}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """A container's variables: the value, or where it comes from."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def ports_of(container: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """A container's ports by name: (number, protocol)."""
    return {p["name"]: (p["containerPort"], p["protocol"]) for p in container.get("ports", [])}
