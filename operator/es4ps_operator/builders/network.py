"""NetworkPolicies of a domain: who may reach the broker, the portal and the file server.

    <domain>-broker  only the portal's and the DCs' Pods reach 5671 (a cluster's nodes: 4369, 25672)
    <domain>-portal  only the ingress controller's Pods reach 8000
    <domain>-files   (spec.fileServices) everyone reaches SMB (445), nothing else
    with spec.monitoring.enabled, Prometheus's namespace reaches the metrics ports

A DC in HostNetwork mode talks from its node's address, which no Pod
selector matches: the broker then admits 5671 from spec.directory.nodeCIDRs,
or, when none are given, from anywhere, and mutual TLS alone admits the worker.
The DCs themselves serve clients everywhere and get no policy.
"""

from __future__ import annotations

from typing import Any

from .. import naming
from ..config import OperatorConfig
from ..domain import Domain
from .common import Manifest, metadata
from .files import SMB_PORT
from .monitoring import BROKER_METRICS_PORT, CONSUMER_METRICS_PORT, PORTAL_METRICS_PORT


def _policy(domain: Domain, name: str, pod_component: str, ingress: list[dict[str, Any]]) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(domain, name, naming.NETWORK),
        "spec": {
            "podSelector": {"matchLabels": naming.selector(domain, pod_component)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def build_network_policies(domain: Domain, config: OperatorConfig) -> list[Manifest]:
    """The broker's and the portal's NetworkPolicies."""
    broker_port = [{"protocol": "TCP", "port": naming.BROKER_PORT}]
    broker_clients: list[dict[str, Any]] = [
        {"podSelector": {"matchLabels": naming.selector(domain, naming.PORTAL)}},
        {"podSelector": {"matchLabels": naming.selector(domain, naming.DIRECTORY)}},
    ]
    broker_rules: list[dict[str, Any]] = [{"from": broker_clients, "ports": broker_port}]
    if domain.directory.host_network:
        if domain.directory.node_cidrs:
            broker_clients += [{"ipBlock": {"cidr": cidr}} for cidr in domain.directory.node_cidrs]
        else:
            broker_rules = [{"ports": broker_port}]

    if domain.broker.clustered:
        # The nodes of a clustered broker talk among themselves (epmd, Erlang distribution over TLS).
        cluster_ports = [{"protocol": "TCP", "port": port} for port in (4369, 25672)]
        broker_rules.append(
            {"from": [{"podSelector": {"matchLabels": naming.selector(domain, naming.BROKER)}}], "ports": cluster_ports}
        )

    ingress_peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": dict(domain.portal.ingress_namespace_labels)}}
    if domain.portal.ingress_pod_labels:
        ingress_peer["podSelector"] = {"matchLabels": dict(domain.portal.ingress_pod_labels)}
    portal_rules = [{"from": [ingress_peer], "ports": [{"protocol": "TCP", "port": naming.PORTAL_HTTP_PORT}]}]

    # The domain's computers and people reach the file server wherever they are; its metrics port only Prometheus.
    files_rules: list[dict[str, Any]] = [{"ports": [{"protocol": "TCP", "port": SMB_PORT}]}]

    if domain.monitoring.enabled:
        # Prometheus scrapes the metrics ports (by name: each Pod declares its own).
        scraper = [{"namespaceSelector": {"matchLabels": dict(domain.monitoring.namespace_labels)}}]
        broker_rules.append({"from": scraper, "ports": [{"protocol": "TCP", "port": BROKER_METRICS_PORT}]})
        metrics_ports = [{"protocol": "TCP", "port": port} for port in (PORTAL_METRICS_PORT, CONSUMER_METRICS_PORT)]
        portal_rules.append({"from": scraper, "ports": metrics_ports})
        files_rules.append({"from": scraper, "ports": [{"protocol": "TCP", "port": naming.FILES_METRICS_PORT_NAME}]})

    policies = [
        _policy(domain, naming.broker_network_policy(domain), naming.BROKER, broker_rules),
        _policy(domain, naming.portal_network_policy(domain), naming.PORTAL, portal_rules),
    ]
    if domain.file_services is not None:
        policies.append(_policy(domain, naming.files_network_policy(domain), naming.FILES, files_rules))
    return policies
