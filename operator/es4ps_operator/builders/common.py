"""Pieces every builder uses: object metadata, volumes of Secrets, hardened security contexts."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from .. import naming
from ..domain import Domain

Manifest = dict[str, Any]


def metadata(domain: Domain, name: str, component: str, owned: bool = True, **extra: Any) -> dict[str, Any]:
    """Metadata of a child: name, namespace, the standard labels and (when `owned`) the owner reference."""
    meta: dict[str, Any] = {"name": name, "namespace": domain.namespace, "labels": naming.labels(domain, component)}
    if owned:
        meta["ownerReferences"] = [naming.owner_reference(domain)]
    meta.update(extra)
    return meta


def content_hash(value: Any) -> str:
    """A short stable hash of JSON-able data (used to restart Pods when their configuration changes)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def with_content_hash(manifest: Manifest) -> Manifest:
    """A copy of `manifest` carrying the hash of its own content (see children.needs_apply)."""
    result = copy.deepcopy(manifest)
    result["metadata"].setdefault("annotations", {})[naming.DESIRED_HASH_ANNOTATION] = content_hash(manifest)
    return result


def desired_hash(manifest: Manifest) -> str:
    return manifest["metadata"]["annotations"][naming.DESIRED_HASH_ANNOTATION]


def secret_volume(volume_name: str, secret_name: str, keys: dict[str, str] | None = None) -> dict[str, Any]:
    """A read-only volume of a Secret; `keys` maps Secret keys to file names (default: every key)."""
    secret: dict[str, Any] = {"secretName": secret_name, "defaultMode": 0o440}
    if keys:
        secret["items"] = [{"key": key, "path": path} for key, path in keys.items()]
    return {"name": volume_name, "secret": secret}


def tls_volume(volume_name: str, secret_name: str) -> dict[str, Any]:
    """The ca.crt, tls.crt and tls.key of a Secret that cert-manager fills."""
    return secret_volume(volume_name, secret_name, {"ca.crt": "ca.crt", "tls.crt": "tls.crt", "tls.key": "tls.key"})


def mount(volume_name: str, path: str, read_only: bool = True) -> dict[str, Any]:
    return {"name": volume_name, "mountPath": path, "readOnly": read_only}


def env(name: str, value: str | int) -> dict[str, Any]:
    return {"name": name, "value": str(value)}


def env_from_secret(name: str, secret_name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}


def env_from_field(name: str, field_path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def restricted_security_context(run_as_user: int | None = None) -> dict[str, Any]:
    """A container that needs no privilege at all (the Kubernetes "restricted" profile)."""
    context: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if run_as_user is not None:
        context["runAsUser"] = run_as_user
        context["runAsGroup"] = run_as_user
    return context


def volume_claim_template(name: str, size: str, storage_class: str | None, labels: dict[str, str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }


def pvc_retention(domain: Domain) -> dict[str, str]:
    """What happens to a StatefulSet's volumes: kept unless the domain says deletionPolicy: Delete."""
    return {"whenDeleted": "Delete" if domain.delete_data else "Retain", "whenScaled": "Retain"}


def image_of(override: str | None, default: str) -> str:
    return override or default
