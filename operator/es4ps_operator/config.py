"""The operator's own configuration: environment variables with defaults.

Everything a Helm value or a `make run-operator` line may change lives here, so
the builders receive one plain object and never read the environment. The
variables are declared once (`VARIABLES`); docs/operator.md's table is
generated from them.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from es4ps_contract.environment import Environment, Variable

PULL_POLICIES = ("Always", "IfNotPresent", "Never")
# Where Kubernetes mounts the service account of a Pod (in-cluster runs only).
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def operator_version() -> str:
    """The project's version: the repository's VERSION file, shipped inside the package."""
    return resources.files("es4ps_operator").joinpath("VERSION").read_text().strip()


VARIABLES = (
    Variable("ES4PS_SAMBA_IMAGE", "the DC and worker image (empty: `es4ps/samba:<VERSION>`)", ""),
    Variable("ES4PS_PORTAL_IMAGE", "the portal image (empty: `es4ps/portal:<VERSION>`)", ""),
    Variable(
        "ES4PS_BROKER_IMAGE",
        "the RabbitMQ image (`es4ps/rabbitmq:<VERSION>` where images cannot be pulled)",
        "rabbitmq:3.13-management",
    ),
    Variable("ES4PS_IMAGE_PULL_POLICY", "pull policy of the domains' images", "IfNotPresent"),
    Variable(
        "ES4PS_ALLOWED_IMAGE_REGISTRIES",
        "comma-separated registries (or registry/path prefixes) a domain's `spec.*.image` may name (empty:"
        " domains cannot override the images)",
        "",
    ),
    Variable("ES4PS_NAMESPACES", "comma-separated namespaces to serve (empty: every namespace)", ""),
    Variable("ES4PS_CLUSTER_DOMAIN", "the cluster's DNS domain", "cluster.local"),
    Variable("ES4PS_CLUSTER_DNS_IP", "the cluster DNS address (empty: Service `kube-system/kube-dns` at start)", ""),
    Variable("ES4PS_RESYNC_SECONDS", "a domain with no event at all is checked this often", "3600"),
    Variable("ES4PS_HTTP_PORT", "port of `/healthz` and `/metrics`", "8080"),
    Variable("ES4PS_LEADER_ELECTION", "elect a leader with a Lease (several replicas, one active)", "true"),
    Variable("ES4PS_LEADER_ELECTION_NAMESPACE", "the Lease's namespace (empty: the Pod's, else `default`)", ""),
    Variable("ES4PS_LEASE_SECONDS", "how long the Lease holds without renewal", "30"),
    Variable("ES4PS_POD_NAME", "identity in the Lease, plus a random suffix (empty: the host name)", ""),
    Variable("ES4PS_LOG_FORMAT", "`json` (one object per line, with the object reference) or `plain`", "json"),
)


def full_image_name(image: str) -> str:
    """An image reference with its registry, as containerd names it: Docker Hub's short forms are
    "rabbitmq:3" = docker.io/library/rabbitmq:3 and "es4ps/samba:1" = docker.io/es4ps/samba:1."""
    first = image.split("/", 1)[0]
    if "/" not in image:
        return f"docker.io/library/{image}"
    return image if "." in first or ":" in first or first == "localhost" else f"docker.io/{image}"


@dataclasses.dataclass(frozen=True)
class Images:
    """Default container images of a domain's components (a domain's spec may override each, see below)."""

    samba: str
    portal: str
    broker: str
    pull_policy: str = "IfNotPresent"
    # Registries (or registry/path prefixes) a domain's own image may come from; empty: no overrides.
    allowed_registries: tuple[str, ...] = ()

    def override_allowed(self, image: str) -> bool:
        """Whether a domain may name `image` instead of the operator's own."""
        candidates = {image, full_image_name(image)}
        return any(
            candidate.startswith(registry.rstrip("/") + "/")
            for candidate in candidates
            for registry in self.allowed_registries
        )


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    images: Images
    cluster_domain: str = "cluster.local"
    # The cluster's DNS service; DCs forward names outside their realm to it. None: not known.
    cluster_dns_ip: str | None = None
    # Namespaces to serve; empty: the whole cluster.
    namespaces: tuple[str, ...] = ()
    resync_seconds: float = 3600.0
    http_port: int = 8080
    leader_election: bool = True
    leader_election_namespace: str = "default"
    lease_seconds: int = 30
    identity: str = "es4ps-operator"
    log_format: str = "json"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> OperatorConfig:
        """Read the configuration; raises SettingError naming the variable that is wrong."""
        env = Environment(VARIABLES, environ)
        version = operator_version()
        images = Images(
            samba=env.text("ES4PS_SAMBA_IMAGE") or f"es4ps/samba:{version}",
            portal=env.text("ES4PS_PORTAL_IMAGE") or f"es4ps/portal:{version}",
            broker=env.text("ES4PS_BROKER_IMAGE"),
            pull_policy=env.choice("ES4PS_IMAGE_PULL_POLICY", PULL_POLICIES),
            allowed_registries=_list(env.text("ES4PS_ALLOWED_IMAGE_REGISTRIES")),
        )
        return cls(
            images=images,
            cluster_domain=env.text("ES4PS_CLUSTER_DOMAIN"),
            cluster_dns_ip=env.text("ES4PS_CLUSTER_DNS_IP") or None,
            namespaces=_list(env.text("ES4PS_NAMESPACES")),
            resync_seconds=env.number("ES4PS_RESYNC_SECONDS", minimum=10),
            http_port=env.integer("ES4PS_HTTP_PORT", minimum=1, maximum=65535),
            leader_election=env.flag("ES4PS_LEADER_ELECTION"),
            leader_election_namespace=env.text("ES4PS_LEADER_ELECTION_NAMESPACE") or _pod_namespace(),
            lease_seconds=env.integer("ES4PS_LEASE_SECONDS", minimum=3),
            identity=env.text("ES4PS_POD_NAME") or socket.gethostname(),
            log_format=env.choice("ES4PS_LOG_FORMAT", ("json", "plain")),
        )


def _list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _pod_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE_FILE.read_text().strip()
    except OSError:
        return "default"
