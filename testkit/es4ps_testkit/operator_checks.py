"""Reading a domain and its children as kubectl shows them (the operator's integration tests, the benchmark)."""

from __future__ import annotations

import base64
import json

import yaml
from cryptography import x509

CHILD_KINDS = (
    "statefulsets,services,configmaps,secrets,serviceaccounts,ingresses,networkpolicies,certificates,issuers,jobs,"
    "poddisruptionbudgets,deployments"
)
MANAGED = "app.kubernetes.io/managed-by=es4ps-operator"


def desired_children(domain: dict) -> set[tuple[str, str]]:
    """(kind, name) of what the operator's builders make of the domain as the API server holds it (with its
    defaults): the children a converged reconcile has written (generated Secrets come on top)."""
    from es4ps_operator.builders import build_desired_state
    from es4ps_operator.config import Images, OperatorConfig
    from es4ps_operator.domain import Domain

    config = OperatorConfig(images=Images(samba="samba", portal="portal", broker="broker"), cluster_dns_ip="10.96.0.10")
    return {
        (m["kind"], m["metadata"]["name"]) for m in build_desired_state(Domain.from_body(domain), config).manifests()
    }


def apply_domain(cluster, domain: dict) -> None:
    cluster.apply(yaml.safe_dump(domain))


def get_domain(cluster, namespace: str, name: str = "acme") -> dict:
    return cluster.get("es4psdomain", name, namespace, check=False)


def condition(domain: dict, kind: str = "Ready") -> dict:
    return next((c for c in (domain.get("status") or {}).get("conditions", []) if c["type"] == kind), {})


def wait_ready(cluster, namespace: str, name: str = "acme", timeout: float = 180) -> dict:
    """Wait until the domain's Ready condition is True and reflects its current generation."""

    def ready():
        domain = get_domain(cluster, namespace, name)
        current = domain and domain.get("status", {}).get("observedGeneration") == domain["metadata"]["generation"]
        return domain if current and condition(domain).get("status") == "True" else None

    return cluster.eventually(ready, timeout=timeout, interval=1, message=f"ES4PSDomain {name} Ready")


def children(cluster, namespace: str) -> dict[tuple[str, str], dict]:
    """Everything the operator manages in `namespace`, by (kind, name)."""
    items = cluster.get(CHILD_KINDS, namespace=namespace)["items"]
    return {
        (item["kind"], item["metadata"]["name"]): item
        for item in items
        if item["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == "es4ps-operator"
    }


def secret_data(cluster, namespace: str, name: str) -> dict[str, str]:
    secret = cluster.get("secret", name, namespace)
    return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}


def certificate_of(cluster, namespace: str, secret_name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(secret_data(cluster, namespace, secret_name)["tls.crt"].encode())


def events(cluster, namespace: str, name: str = "acme") -> list[dict]:
    listing = cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "-o",
        "json",
        f"--field-selector=involvedObject.kind=ES4PSDomain,involvedObject.name={name}",
    ).stdout
    return json.loads(listing)["items"]


def event_reasons(cluster, namespace: str, name: str = "acme") -> set[str]:
    return {event["reason"] for event in events(cluster, namespace, name)}
