"""The operator's own configuration: environment variables with defaults.

Everything a Helm value or a `make run-operator` line may change lives here, so
the builders receive one plain object and never read the environment. The
variables are listed with their meaning in docs/operator.md ("Running it").
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

PULL_POLICIES = ("Always", "IfNotPresent", "Never")
# Where Kubernetes mounts the service account of a Pod (in-cluster runs only).
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class ConfigError(ValueError):
    """An environment variable has a value the operator cannot use."""


def operator_version() -> str:
    """The project's version: the repository's VERSION file, shipped inside the package."""
    return resources.files("es4ps_operator").joinpath("VERSION").read_text().strip()


@dataclasses.dataclass(frozen=True)
class Images:
    """Default container images of a domain's components (a domain's spec may override each)."""

    samba: str
    portal: str
    broker: str
    pull_policy: str = "IfNotPresent"


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
        """Read the configuration; raises ConfigError naming the variable that is wrong."""
        version = operator_version()
        pull_policy = environ.get("ES4PS_IMAGE_PULL_POLICY", "IfNotPresent")
        if pull_policy not in PULL_POLICIES:
            raise ConfigError(f"ES4PS_IMAGE_PULL_POLICY must be one of {', '.join(PULL_POLICIES)}")
        images = Images(
            samba=environ.get("ES4PS_SAMBA_IMAGE", f"es4ps/samba:{version}"),
            portal=environ.get("ES4PS_PORTAL_IMAGE", f"es4ps/portal:{version}"),
            broker=environ.get("ES4PS_BROKER_IMAGE", "rabbitmq:3.13-management"),
            pull_policy=pull_policy,
        )
        log_format = environ.get("ES4PS_LOG_FORMAT", "json")
        if log_format not in ("json", "plain"):
            raise ConfigError("ES4PS_LOG_FORMAT must be json or plain")
        return cls(
            images=images,
            cluster_domain=environ.get("ES4PS_CLUSTER_DOMAIN", "cluster.local"),
            cluster_dns_ip=environ.get("ES4PS_CLUSTER_DNS_IP") or None,
            namespaces=tuple(n.strip() for n in environ.get("ES4PS_NAMESPACES", "").split(",") if n.strip()),
            resync_seconds=_number(environ, "ES4PS_RESYNC_SECONDS", 3600.0, minimum=10),
            http_port=int(_number(environ, "ES4PS_HTTP_PORT", 8080, minimum=1)),
            leader_election=_flag(environ, "ES4PS_LEADER_ELECTION", True),
            leader_election_namespace=environ.get("ES4PS_LEADER_ELECTION_NAMESPACE") or _pod_namespace(),
            lease_seconds=int(_number(environ, "ES4PS_LEASE_SECONDS", 30, minimum=3)),
            identity=environ.get("ES4PS_POD_NAME") or socket.gethostname(),
            log_format=log_format,
        )


def _number(environ: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    text = environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {text!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}")
    return value


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    text = environ.get(name)
    if text is None:
        return default
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise ConfigError(f"{name} must be true or false, not {text!r}")


def _pod_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE_FILE.read_text().strip()
    except OSError:
        return "default"
