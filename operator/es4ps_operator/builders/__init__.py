"""Desired state: pure functions from a domain (and the operator's configuration) to manifests.

Nothing here talks to the API server; every function is unit-tested on plain
data. One module per component:

    certificates  the domain's CA and every certificate (cert-manager)
    broker        RabbitMQ: ConfigMap, headless Service, StatefulSet
    directory     Samba DCs: one StatefulSet per DC, their Services
    external      external mode: the one worker Deployment provisioning into the organisation's directory
    portal        the portal: StatefulSet, Service, Ingress
    network       NetworkPolicies
    secrets       Secrets generated once (created, never applied over)
    jobs          Jobs acting on the DCs and the backups (a DC leaving, dbcheck, backup, restore)
    files         the file server (spec.fileServices): StatefulSet, Service

Which DCs exist and which image each runs is decided beforehand from what is
observed (es4ps_operator.directory_plan); the builders take that as plain data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from .. import naming
from ..config import OperatorConfig
from ..domain import Domain
from ..external import url_problem
from .broker import build_broker
from .certificates import build_certificates
from .common import Manifest, service_account, with_content_hash
from .directory import build_directory, samba_image
from .external import build_external_worker
from .files import build_files
from .network import build_network_policies
from .portal import build_portal
from .secrets import GeneratedSecret, build_generated_secrets


def build_service_accounts(domain: Domain) -> list[Manifest]:
    """The ServiceAccounts of the components whose spec annotates one (before the Pods that name them)."""
    placements = {
        naming.PORTAL: domain.portal.placement,
        naming.BROKER: domain.broker.placement,
        naming.DIRECTORY: domain.directory.placement,
        naming.MAINTENANCE: domain.maintenance,
    }
    if domain.file_services is not None:
        placements[naming.FILES] = domain.file_services.placement
    if domain.directory.backup is not None:
        placements[naming.BACKUP] = domain.directory.backup.placement
    return [
        account
        for component, placement in placements.items()
        for account in service_account(domain, component, placement)
    ]


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


def build_desired_state(
    domain: Domain,
    config: OperatorConfig,
    dcs: Mapping[int, str] | None = None,
    jobs: Sequence[Manifest] = (),
    workloads: bool = True,
) -> DesiredState:
    """The children of `domain`, grouped by component.

    `dcs`: the DCs (index -> image) to run; default every one of `replicas` with the
    domain's image. `jobs`: Jobs to run now. `workloads`: False while a restore
    prepares the volumes (no DC or portal StatefulSet yet). In external mode no
    DC runs: one worker Deployment, with an identity of its own, takes their place.
    """
    external = domain.directory.external is not None
    if dcs is None:
        dcs = {} if external else {index: samba_image(domain, config) for index in range(domain.directory.replicas)}
    dc_indices = sorted(dcs)  # the workers beside them, or in external mode the one worker (naming.workers)
    if external:
        # A URL the worker may not use runs nothing (the status says why).
        usable = url_problem(domain.directory.external.url) is None
        directory = build_external_worker(domain, config) if workloads and usable else []
    else:
        directory = build_directory(domain, config, dcs if workloads else {})
    applied = {
        "accounts": build_service_accounts(domain),
        "certificates": build_certificates(domain, config, dc_indices),
        "network": build_network_policies(domain, config),
        "broker": build_broker(domain, config),
        "directory": directory,
        "portal": build_portal(domain, config, dc_indices) if workloads else [],
        "files": build_files(domain, config) if workloads else [],
        "jobs": list(jobs),
    }
    return DesiredState(
        applied={group: [with_content_hash(m) for m in manifests] for group, manifests in applied.items()},
        generated_secrets=build_generated_secrets(domain, dc_indices),
    )


__all__ = ["DesiredState", "GeneratedSecret", "Manifest", "build_desired_state"]
