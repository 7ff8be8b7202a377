"""Pieces every builder uses: object metadata, volumes of Secrets, probes, security contexts, StatefulSets."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from .. import naming
from ..domain import API_VERSION, KIND, Domain
from ..placement import Placement

Manifest = dict[str, Any]


def owner_reference(domain: Domain) -> dict[str, object]:
    """Makes a child garbage-collected with its domain."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": domain.name,
        "uid": domain.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(domain: Domain, name: str, component: str, owned: bool = True, **extra: Any) -> dict[str, Any]:
    """Metadata of a child: name, namespace, the standard labels and (when `owned`) the owner reference."""
    meta: dict[str, Any] = {"name": name, "namespace": domain.namespace, "labels": naming.labels(domain, component)}
    if owned:
        meta["ownerReferences"] = [owner_reference(domain)]
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


# Secret files readable by the Pod's fsGroup (owner root): the default for Pods that set one.
GROUP_READABLE = 0o440
# For a container of a Pod without fsGroup (the DC's: fsGroup would re-own the directory's volume) that
# runs as a non-root user: the files are readable by that container's user, and no other user runs there.
CONTAINER_READABLE = 0o444


def secret_volume(
    volume_name: str, secret_name: str, keys: dict[str, str] | None = None, mode: int = GROUP_READABLE
) -> dict[str, Any]:
    """A read-only volume of a Secret; `keys` maps Secret keys to file names (default: every key)."""
    secret: dict[str, Any] = {"secretName": secret_name, "defaultMode": mode}
    if keys:
        secret["items"] = [{"key": key, "path": path} for key, path in keys.items()]
    return {"name": volume_name, "secret": secret}


def admin_password_volume(domain: Domain) -> dict[str, Any]:
    """The domain's Administrator password as the file `password`: the generated one, or in a domain that joined
    an existing one that domain's (spec.directory.bootstrap.join.credentialsSecretRef)."""
    credentials = domain.directory.join_credentials
    if credentials is not None:
        return secret_volume("admin", credentials.name, {credentials.key: "password"})
    return secret_volume("admin", naming.admin_password_secret(domain), {"password": "password"})


def tls_volume(volume_name: str, secret_name: str, mode: int = GROUP_READABLE) -> dict[str, Any]:
    """The ca.crt, tls.crt and tls.key of a Secret that cert-manager fills."""
    keys = {"ca.crt": "ca.crt", "tls.crt": "tls.crt", "tls.key": "tls.key"}
    return secret_volume(volume_name, secret_name, keys, mode)


def memory_volume(volume_name: str, size: str = "64Mi") -> dict[str, Any]:
    """A small writable scratch directory in memory (e.g. /tmp under a read-only root file system)."""
    return {"name": volume_name, "emptyDir": {"medium": "Memory", "sizeLimit": size}}


def mount(volume_name: str, path: str, read_only: bool = True) -> dict[str, Any]:
    return {"name": volume_name, "mountPath": path, "readOnly": read_only}


def env(name: str, value: str | int) -> dict[str, Any]:
    return {"name": name, "value": str(value)}


def env_from_secret(name: str, secret_name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}


def env_from_field(name: str, field_path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def exec_probe(command: list[str], period_s: int, failures: int, timeout_s: int) -> dict[str, Any]:
    return {
        "exec": {"command": command},
        "periodSeconds": period_s,
        "failureThreshold": failures,
        "timeoutSeconds": timeout_s,
    }


def http_probe(path: str, port: str, period_s: int, failures: int = 3, timeout_s: int = 5) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period_s,
        "failureThreshold": failures,
        "timeoutSeconds": timeout_s,
    }


def restricted_security_context(run_as_user: int | None = None) -> dict[str, Any]:
    """A container that needs no privilege at all (the Kubernetes "restricted" profile, read-only root)."""
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


def volume_claim(domain: Domain, name: str, storage: Any, component: str, dc_index: int | None = None) -> Manifest:
    """A claim created once, before its StatefulSet (a restore fills it; the StatefulSet adopts it by name).

    Never owned by the domain: like the claims a StatefulSet makes, it follows
    the StatefulSet's retention policy, not the domain's deletion.
    """
    labels = naming.selector(domain, component)
    if dc_index is not None:
        labels[naming.DC_INDEX_LABEL] = str(dc_index)
    claim = volume_claim_template(name, storage.size, storage.storage_class, labels)
    claim["metadata"]["namespace"] = domain.namespace
    return claim


def pvc_retention(domain: Domain) -> dict[str, str]:
    """What happens to a StatefulSet's volumes: kept unless the domain says deletionPolicy: Delete."""
    return {"whenDeleted": "Delete" if domain.delete_data else "Retain", "whenScaled": "Retain"}


def statefulset(
    domain: Domain,
    name: str,
    component: str,
    selector: dict[str, str],
    replicas: int,
    pod: dict[str, Any],
    storage: Any,
    **spec: Any,
) -> Manifest:
    """A StatefulSet of `component` whose Pods run `pod` (template metadata and spec) with one volume "data"."""
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(domain, name, component),
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "persistentVolumeClaimRetentionPolicy": pvc_retention(domain),
            **spec,
            "template": pod,
            "volumeClaimTemplates": [volume_claim_template("data", storage.size, storage.storage_class, selector)],
        },
    }


def service(domain: Domain, name: str, component: str, spec: dict[str, Any]) -> Manifest:
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata(domain, name, component), "spec": spec}


def spread_constraints(placement: Placement, selector: dict[str, str]) -> list[dict[str, Any]]:
    """The Pods' topology spread: the domain's own constraints, or over nodes, as far as possible.

    ScheduleAnyway by default: a one-node cluster still runs every Pod; the scheduler spreads where it can.
    Nodes only: the scheduler leaves out of its spread scoring every node that lacks one of a Pod's
    topology keys, so a default that also named zones spread nothing on a cluster without zone labels.
    A constraint without labelSelector counts this component's Pods of the domain.
    """
    if placement.topology_spread is not None:
        return [{"labelSelector": {"matchLabels": selector}} | dict(c) for c in placement.topology_spread]
    return [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector},
        }
    ]


def merged_resources(ours: dict[str, Any], theirs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A container's requests and limits: the domain's over the operator's, key by key."""
    return {
        kind: {**ours.get(kind, {}), **theirs.get(kind, {})}
        for kind in ("requests", "limits")
        if kind in ours or kind in theirs
    }


def merged_affinity(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """The domain's affinity with the terms the operator needs added (lists joined, objects merged)."""
    result = copy.deepcopy(theirs)
    for key, value in ours.items():
        if isinstance(value, dict):
            result[key] = merged_affinity(value, result.get(key) or {})
        elif isinstance(value, list):
            result[key] = [*(result.get(key) or []), *copy.deepcopy(value)]
        else:
            result[key] = value
    return result


def pod_template(
    domain: Domain,
    component: str,
    placement: Placement,
    pod_spec: dict[str, Any],
    *,
    main: tuple[str, ...],
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    spread: bool = True,
) -> dict[str, Any]:
    """A component's Pod template: `pod_spec` with the domain's overrides (`placement`) applied.

    `main`: the containers the override's resources apply to. The operator's own labels, annotations and
    affinity terms win or are kept; `spread`: the operator's default topology spread when none is given.
    """
    selector = naming.selector(domain, component)
    spec = dict(pod_spec)
    if spread or placement.topology_spread is not None:
        spec["topologySpreadConstraints"] = spread_constraints(placement, selector)
    if placement.priority_class:
        spec["priorityClassName"] = placement.priority_class
    if placement.node_selector:
        spec["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        spec["tolerations"] = [dict(toleration) for toleration in placement.tolerations]
    affinity = merged_affinity(spec.get("affinity") or {}, placement.affinity)
    if affinity:
        spec["affinity"] = affinity
    if placement.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in placement.image_pull_secrets]
    if placement.service_account_annotations is not None:
        spec["serviceAccountName"] = naming.service_account(domain, component)
    for key in ("initContainers", "containers"):
        if key in spec:
            spec[key] = [
                {**c, "resources": merged_resources(c.get("resources") or {}, placement.resources)}
                if c["name"] in main
                else c
                for c in spec[key]
            ]
    metadata: dict[str, Any] = {"labels": {**placement.pod_labels, **(labels or naming.labels(domain, component))}}
    if placement.pod_annotations or annotations:
        metadata["annotations"] = {**placement.pod_annotations, **(annotations or {})}
    return {"metadata": metadata, "spec": spec}


def service_account(domain: Domain, component: str, placement: Placement) -> list[Manifest]:
    """The component's own ServiceAccount when the domain annotates one (workload identity), else none.

    It holds no rights (the operator binds no role) and its token is not mounted unless a Pod asks.
    """
    if placement.service_account_annotations is None:
        return []
    meta = metadata(domain, naming.service_account(domain, component), component)
    meta["annotations"] = dict(placement.service_account_annotations)
    return [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False}]


def disruption_budget(domain: Domain, component: str, **budget: int) -> Manifest:
    """A PodDisruptionBudget over the component's Pods (`budget`: minAvailable or maxUnavailable)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(domain, naming.disruption_budget(domain, component), component),
        "spec": {"selector": {"matchLabels": naming.selector(domain, component)}, **budget},
    }


def broker_client_env(domain: Domain, cluster_domain: str, tls_dir: str) -> list[dict[str, Any]]:
    """How the portal and the workers reach the broker: its URL, their client certificate, the queues' type."""
    return [
        env("ES4PS_BROKER_URL", naming.broker_url(domain, cluster_domain)),
        env("ES4PS_BROKER_CA_FILE", f"{tls_dir}/ca.crt"),
        env("ES4PS_BROKER_CERT_FILE", f"{tls_dir}/tls.crt"),
        env("ES4PS_BROKER_KEY_FILE", f"{tls_dir}/tls.key"),
        env("ES4PS_BROKER_QUEUE_TYPE", "quorum" if domain.broker.clustered else "classic"),
    ]
