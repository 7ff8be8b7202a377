"""cert-manager objects of a domain: its own CA and every certificate the components use.

    <domain>-selfsigned  Issuer (SelfSigned)   signs only the CA certificate
    <domain>-ca-tls      Certificate (CA)      the domain's CA, 10 years
    <domain>-ca          Issuer (CA)           signs every other certificate
    <domain>-broker-tls          RabbitMQ's server certificate
    <domain>-portal-broker-tls   the portal's client certificate, CN "portal"
    <domain>-dc<i>-worker-tls    each DC's worker client certificate, CN "worker"
    <domain>-dc<i>-ldaps-tls     each DC's LDAPS certificate (also its health endpoint's)
    <domain>-monitoring-tls      the client certificate, CN "monitoring", that reads the DCs' health endpoints
    <domain>-portal-https-tls    the portal's HTTPS certificate (spec.portal.tls.issuerRef or the CA)

Every Certificate has the name of the Secret it fills. The broker maps a
client certificate's common name to its RabbitMQ user, so the CN is the
identity: the workers share the user "worker", each with its own key.
"""

from __future__ import annotations

from typing import Any

from .. import naming
from ..config import OperatorConfig
from ..domain import Domain
from .broker import node_host
from .common import Manifest, metadata

API_VERSION = "cert-manager.io/v1"
CA_DURATION = "87600h"  # 10 years: rotating the CA means re-issuing everything
# Leaf certificates: cert-manager's defaults (90 days, renewed 30 days before), new key each time.
LEAF_PRIVATE_KEY = {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}
# ECDSA keys sign; they never encipher, so "key encipherment" is not asked for.
SERVER_USAGES = ["digital signature", "server auth"]
CLIENT_USAGES = ["digital signature", "client auth"]


def _issuer_ref(name: str, kind: str = "Issuer", group: str = "cert-manager.io") -> dict[str, str]:
    return {"name": name, "kind": kind, "group": group}


def _certificate(domain: Domain, name: str, spec: dict[str, Any]) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "Certificate",
        "metadata": metadata(domain, name, naming.CERTIFICATES),
        "spec": {
            "secretName": name,
            # Labels on the issued Secret let the operator find it (cleanup under deletionPolicy: Delete).
            "secretTemplate": {
                "labels": naming.selector(domain, naming.CERTIFICATES) | {naming.PART_OF_LABEL: naming.PART_OF}
            },
            **spec,
        },
    }


def _leaf(domain: Domain, name: str, usages: list[str], **names: Any) -> Manifest:
    return _certificate(
        domain,
        name,
        {
            "issuerRef": _issuer_ref(naming.ca_issuer(domain)),
            "privateKey": dict(LEAF_PRIVATE_KEY),
            "usages": usages,
            **names,
        },
    )


def service_dns_names(service: str, namespace: str, cluster_domain: str) -> list[str]:
    """Every name a client in the cluster may use for a Service."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{cluster_domain}",
    ]


def build_certificates(domain: Domain, config: OperatorConfig, dc_indexes: list[int]) -> list[Manifest]:
    """The CA chain and every certificate of the domain, in the order they depend on each other (the DCs of
    `dc_indexes`, their workers' or the external worker's)."""
    ns, cluster_domain = domain.namespace, config.cluster_domain
    manifests: list[Manifest] = [
        {
            "apiVersion": API_VERSION,
            "kind": "Issuer",
            "metadata": metadata(domain, naming.ca_issuer_bootstrap(domain), naming.CERTIFICATES),
            "spec": {"selfSigned": {}},
        },
        _certificate(
            domain,
            naming.ca_certificate(domain),
            {
                "isCA": True,
                "commonName": f"{domain.realm} ES4PS CA",
                "duration": CA_DURATION,
                "issuerRef": _issuer_ref(naming.ca_issuer_bootstrap(domain)),
                # The CA keeps its key: a new one would invalidate every certificate the components trust.
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Never"},
            },
        ),
        {
            "apiVersion": API_VERSION,
            "kind": "Issuer",
            "metadata": metadata(domain, naming.ca_issuer(domain), naming.CERTIFICATES),
            "spec": {"ca": {"secretName": naming.ca_certificate(domain)}},
        },
    ]
    broker = naming.broker(domain)
    broker_names = service_dns_names(broker, ns, cluster_domain) + [f"{broker}-0.{broker}.{ns}.svc.{cluster_domain}"]
    broker_usages = SERVER_USAGES
    if domain.broker.clustered:
        # Each node shows this certificate to its peers too (Erlang distribution over TLS, both ways).
        broker_names += [node_host(domain, cluster_domain, index) for index in range(domain.broker.replicas)]
        broker_usages = [*SERVER_USAGES, "client auth"]
    manifests.append(_leaf(domain, naming.broker_tls(domain), broker_usages, dnsNames=broker_names))
    manifests.append(
        _leaf(domain, naming.portal_broker_tls(domain), CLIENT_USAGES, commonName=naming.PORTAL_BROKER_USER)
    )
    for worker in naming.workers(domain, dc_indexes):
        manifests.append(_leaf(domain, worker.broker_tls, CLIENT_USAGES, commonName=naming.WORKER_BROKER_USER))
    # External mode has no DC (the organisation's directory has its own certificate).
    manifests.extend(_dc_ldaps_certificate(domain, config, index) for index in dc_indexes)
    if domain.directory.external is None:  # it reads the DCs' health endpoints
        monitoring = _leaf(domain, naming.monitoring_tls(domain), CLIENT_USAGES, commonName=naming.MONITORING_CLIENT)
        manifests.append(monitoring)
    manifests.append(_portal_https_certificate(domain))
    return manifests


def _dc_ldaps_certificate(domain: Domain, config: OperatorConfig, index: int) -> Manifest:
    ns, cluster_domain = domain.namespace, config.cluster_domain
    dns_names = [f"{naming.dc_hostname(domain, index)}.{domain.dns_domain}", domain.dns_domain]
    dns_names += service_dns_names(naming.directory_service(domain), ns, cluster_domain)
    # Its own headless Service: the operator reaches the DC's health endpoint by that name.
    dns_names += service_dns_names(naming.dc(domain, index), ns, cluster_domain)
    if not domain.directory.host_network:
        dns_names += service_dns_names(naming.dc_external_service(domain, index), ns, cluster_domain)
    names: dict[str, Any] = {
        "commonName": f"{naming.dc_hostname(domain, index)}.{domain.dns_domain}",
        "dnsNames": dns_names,
    }
    if index < len(domain.directory.advertised_addresses):
        names["ipAddresses"] = [domain.directory.advertised_addresses[index]]
    return _leaf(domain, naming.dc_ldaps_tls(domain, index), SERVER_USAGES, **names)


def _portal_https_certificate(domain: Domain) -> Manifest:
    issuer = domain.portal.tls_issuer
    issuer_ref = (
        _issuer_ref(issuer.name, issuer.kind, issuer.group) if issuer else _issuer_ref(naming.ca_issuer(domain))
    )
    return _certificate(
        domain,
        naming.portal_https_tls(domain),
        {
            "issuerRef": issuer_ref,
            # The admin's own host name too, when spec.portal.admin.host gives it one.
            "dnsNames": [domain.portal.host, *([domain.portal.admin_host] if domain.portal.admin_host else [])],
            "privateKey": dict(LEAF_PRIVATE_KEY),
            "usages": SERVER_USAGES,
        },
    )
