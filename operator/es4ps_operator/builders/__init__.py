"""Desired state: pure functions from a domain (and the operator's configuration) to manifests.

Nothing here talks to the API server; every function is unit-tested on plain
data. One module per component:

    certificates  the domain's CA and every certificate (cert-manager)
    broker        RabbitMQ: ConfigMap, headless Service, StatefulSet
    directory     Samba DCs: one StatefulSet per DC, their Services
    portal        the portal: StatefulSet, Service, Ingress
    network       NetworkPolicies
    secrets       Secrets generated once (created, never applied over)
"""

from __future__ import annotations

import dataclasses

from ..config import OperatorConfig
from ..domain import Domain
from .broker import build_broker
from .certificates import build_certificates
from .common import Manifest, with_content_hash
from .directory import build_directory
from .network import build_network_policies
from .portal import build_portal
from .secrets import GeneratedSecret, build_generated_secrets


@dataclasses.dataclass(frozen=True)
class DesiredState:
    """Everything one domain should consist of."""

    # Applied with server-side apply, in this order (issuers before the certificates they sign);
    # each carries the hash of its content in an annotation.
    applied: dict[str, list[Manifest]]
    # Created once when missing, never applied over.
    generated_secrets: list[GeneratedSecret]

    def manifests(self) -> list[Manifest]:
        """Every applied manifest, in apply order."""
        return [manifest for group in self.applied.values() for manifest in group]


def build_desired_state(domain: Domain, config: OperatorConfig) -> DesiredState:
    """The children of `domain`, grouped by component."""
    applied = {
        "certificates": build_certificates(domain, config),
        "network": build_network_policies(domain, config),
        "broker": build_broker(domain, config),
        "directory": build_directory(domain, config),
        "portal": build_portal(domain, config),
    }
    return DesiredState(
        applied={group: [with_content_hash(m) for m in manifests] for group, manifests in applied.items()},
        generated_secrets=build_generated_secrets(domain),
    )


__all__ = ["DesiredState", "GeneratedSecret", "Manifest", "build_desired_state"]
