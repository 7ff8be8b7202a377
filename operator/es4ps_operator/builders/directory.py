"""The Samba domain controllers of a domain: one StatefulSet per DC, plus their Services.

Each DC is its own StatefulSet `<domain>-dc<i>` with one Pod, its own volume
and its own certificates, because DCs are not interchangeable replicas: each
has a computer name, an advertised address and an LDAPS certificate of its
own. dc0 provisions the domain; the others join it. A Pod runs two
containers from images/samba: `dc` (es4ps-samba-dc) and `worker`
(es4ps-worker), which talks to the DC beside it over ldap://127.0.0.1.

Least privilege (see ../shared/FACTS.md): no privileged mode, no SYS_ADMIN;
the DC keeps NT ACLs in user.* xattrs and needs only CHOWN, DAC_OVERRIDE,
FOWNER, SETUID, SETGID and NET_BIND_SERVICE. The worker needs none.

Services:
    <domain>-dc<i>        headless, that DC's own address (joins, and the StatefulSet's DNS)
    <domain>-directory    LDAP/LDAPS of every ready DC, for the portal's login checks
    <domain>-dc<i>-external  (networkMode Service) the DC's ports under spec.directory.serviceType
"""

from __future__ import annotations

from typing import Any

from .. import naming
from ..config import OperatorConfig
from ..domain import Domain
from .common import (
    Manifest,
    env,
    env_from_field,
    metadata,
    mount,
    pvc_retention,
    secret_volume,
    tls_volume,
    volume_claim_template,
)

DATA_DIR = "/var/lib/samba"
ADMIN_DIR = "/etc/es4ps/admin"
LDAPS_TLS_DIR = "/etc/es4ps/ldaps-tls"
BROKER_TLS_DIR = "/etc/es4ps/broker-tls"
KEYS_DIR = "/etc/es4ps/keys"
DC_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "NET_BIND_SERVICE"]

# (name, port, protocol) of everything an AD DC serves, except dynamic RPC ports.
DC_PORTS = [
    ("dns-tcp", 53, "TCP"),
    ("dns-udp", 53, "UDP"),
    ("kerberos-tcp", 88, "TCP"),
    ("kerberos-udp", 88, "UDP"),
    ("epmap", 135, "TCP"),
    ("netbios-ns", 137, "UDP"),
    ("netbios-dgm", 138, "UDP"),
    ("netbios-ssn", 139, "TCP"),
    ("ldap", 389, "TCP"),
    ("cldap", 389, "UDP"),
    ("smb", 445, "TCP"),
    ("kpasswd-tcp", 464, "TCP"),
    ("kpasswd-udp", 464, "UDP"),
    ("ldaps", 636, "TCP"),
    ("gc", 3268, "TCP"),
    ("gc-ssl", 3269, "TCP"),
]


def build_directory(domain: Domain, config: OperatorConfig) -> list[Manifest]:
    """Services and one StatefulSet per domain controller."""
    manifests: list[Manifest] = [_directory_service(domain)]
    for index in range(domain.directory.replicas):
        manifests.append(_dc_headless_service(domain, index))
        if not domain.directory.host_network:
            manifests.append(_dc_external_service(domain, index))
        manifests.append(_dc_statefulset(domain, config, index))
    return manifests


def dc_selector(domain: Domain, index: int) -> dict[str, str]:
    return naming.selector(domain, naming.DIRECTORY) | {naming.DC_INDEX_LABEL: str(index)}


def _service_port(name: str, port: int, protocol: str) -> dict[str, Any]:
    return {"name": name, "port": port, "targetPort": port, "protocol": protocol}


def _directory_service(domain: Domain) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(domain, naming.directory_service(domain), naming.DIRECTORY),
        "spec": {
            "selector": naming.selector(domain, naming.DIRECTORY),
            "ports": [_service_port("ldap", 389, "TCP"), _service_port("ldaps", 636, "TCP")],
        },
    }


def _dc_headless_service(domain: Domain, index: int) -> Manifest:
    # Resolves straight to the DC's Pod address (its node's in HostNetwork mode), every port included.
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(domain, naming.dc(domain, index), naming.DIRECTORY),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": dc_selector(domain, index),
            "ports": [_service_port("ldap", 389, "TCP")],
        },
    }


def _dc_external_service(domain: Domain, index: int) -> Manifest:
    directory = domain.directory
    meta = metadata(domain, naming.dc_external_service(domain, index), naming.DIRECTORY)
    if directory.service_annotations:
        meta["annotations"] = dict(directory.service_annotations)
    spec: dict[str, Any] = {
        "type": directory.service_type,
        "selector": dc_selector(domain, index),
        "ports": [_service_port(name, port, protocol) for name, port, protocol in DC_PORTS],
    }
    if directory.service_type != "ClusterIP":
        # Keep the clients' addresses (Samba logs and policies see who connects).
        spec["externalTrafficPolicy"] = "Local"
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def _advertised_ip_env(domain: Domain, index: int) -> dict[str, Any]:
    addresses = domain.directory.advertised_addresses
    if index < len(addresses):
        return env("ES4PS_HOST_IP", addresses[index])
    return env_from_field("ES4PS_HOST_IP", "status.hostIP" if domain.directory.host_network else "status.podIP")


def _dns_forwarder(domain: Domain, config: OperatorConfig) -> str | None:
    return domain.directory.dns_forwarder or config.cluster_dns_ip


def _dc_statefulset(domain: Domain, config: OperatorConfig, index: int) -> Manifest:
    name = naming.dc(domain, index)
    image = domain.directory.image or config.images.samba
    forwarder = _dns_forwarder(domain, config)
    common_env = [
        env("ES4PS_REALM", domain.realm),
        env("ES4PS_NETBIOS_NAME", domain.netbios_name),
        env("ES4PS_ADMIN_PASSWORD_FILE", f"{ADMIN_DIR}/password"),
    ]

    dc_env = [
        *common_env,
        env("ES4PS_DC_HOSTNAME", naming.dc_hostname(index)),
        _advertised_ip_env(domain, index),
        env("ES4PS_DATA_DIR", DATA_DIR),
        env("ES4PS_TLS_CERT_FILE", f"{LDAPS_TLS_DIR}/tls.crt"),
        env("ES4PS_TLS_KEY_FILE", f"{LDAPS_TLS_DIR}/tls.key"),
        env("ES4PS_TLS_CA_FILE", f"{LDAPS_TLS_DIR}/ca.crt"),
        env("ES4PS_DC_ROLE", "provision" if index == 0 else "join"),
    ]
    if index > 0:
        dc_env.append(
            env("ES4PS_JOIN_SERVER", f"{naming.dc(domain, 0)}.{domain.namespace}.svc.{config.cluster_domain}")
        )
    if forwarder:
        dc_env.append(env("ES4PS_DNS_FORWARDER", forwarder))

    dc_container = {
        "name": "dc",
        "image": image,
        "imagePullPolicy": config.images.pull_policy,
        "command": ["es4ps-samba-dc", "run"],
        "env": dc_env,
        "ports": [
            {"name": port_name, "containerPort": port, "protocol": protocol} for port_name, port, protocol in DC_PORTS
        ],
        # Provisioning or joining takes a while on first start; liveness waits for it.
        "startupProbe": {
            "exec": {"command": ["es4ps-samba-dc", "live"]},
            "periodSeconds": 5,
            "failureThreshold": 120,
            "timeoutSeconds": 10,
        },
        "livenessProbe": {
            "exec": {"command": ["es4ps-samba-dc", "live"]},
            "periodSeconds": 30,
            "failureThreshold": 4,
            "timeoutSeconds": 10,
        },
        "readinessProbe": {
            "exec": {"command": ["es4ps-samba-dc", "ready"]},
            "periodSeconds": 10,
            "failureThreshold": 3,
            "timeoutSeconds": 10,
        },
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {
            # Samba runs as root and switches users itself; it gets only the capabilities it needs.
            "runAsUser": 0,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": list(DC_CAPABILITIES)},
        },
        "volumeMounts": [
            mount("data", DATA_DIR, read_only=False),
            mount("admin", ADMIN_DIR),
            mount("ldaps-tls", LDAPS_TLS_DIR),
        ],
    }
    worker_container = {
        "name": "worker",
        "image": image,
        "imagePullPolicy": config.images.pull_policy,
        "command": ["es4ps-worker"],
        "env": [
            *common_env,
            env("ES4PS_BROKER_URL", naming.broker_url(domain, config.cluster_domain)),
            env("ES4PS_BROKER_CA_FILE", f"{BROKER_TLS_DIR}/ca.crt"),
            env("ES4PS_BROKER_CERT_FILE", f"{BROKER_TLS_DIR}/tls.crt"),
            env("ES4PS_BROKER_KEY_FILE", f"{BROKER_TLS_DIR}/tls.key"),
            env("ES4PS_SEALING_PRIVATE_KEY_FILE", f"{KEYS_DIR}/sealing-private.key"),
            env("ES4PS_SIGNING_PUBLIC_KEY_FILE", f"{KEYS_DIR}/signing-public.key"),
            env("ES4PS_LDAP_URL", "ldap://127.0.0.1"),
            env("ES4PS_WORKER_NAME", name),
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {
            # Root only to read its root-owned 0440 secret files (no fsGroup: it would re-own the
            # directory's volume); with no capability at all it can do nothing else a user could not.
            "runAsUser": 0,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        "volumeMounts": [
            mount("admin", ADMIN_DIR),
            mount("broker-tls", BROKER_TLS_DIR),
            mount("worker-keys", KEYS_DIR),
            mount("tmp", "/tmp", read_only=False),
        ],
    }
    nameservers = ["127.0.0.1"] + ([config.cluster_dns_ip] if config.cluster_dns_ip else [])
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": domain.directory.host_network,
        # The DC resolves through its own DNS (samba_dnsupdate needs it), then the cluster's.
        "dnsPolicy": "None",
        "dnsConfig": {
            "nameservers": nameservers,
            "searches": [
                f"{domain.namespace}.svc.{config.cluster_domain}",
                f"svc.{config.cluster_domain}",
                domain.dns_domain,
            ],
        },
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 60,
        "containers": [dc_container, worker_container],
        "volumes": [
            secret_volume("admin", naming.admin_password_secret(domain), {"password": "password"}),
            tls_volume("ldaps-tls", naming.dc_ldaps_tls(domain, index)),
            tls_volume("broker-tls", naming.worker_tls(domain, index)),
            secret_volume(
                "worker-keys",
                naming.task_keys_secret(domain),
                {
                    "sealing-private.key": "sealing-private.key",
                    "signing-public.key": "signing-public.key",
                },
            ),
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        ],
    }
    if domain.directory.node_selector:
        pod_spec["nodeSelector"] = dict(domain.directory.node_selector)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(domain, name, naming.DIRECTORY),
        "spec": {
            "serviceName": naming.dc(domain, index),
            "replicas": 1,
            "selector": {"matchLabels": dc_selector(domain, index)},
            "persistentVolumeClaimRetentionPolicy": pvc_retention(domain),
            "template": {
                "metadata": {"labels": naming.labels(domain, naming.DIRECTORY) | {naming.DC_INDEX_LABEL: str(index)}},
                "spec": pod_spec,
            },
            "volumeClaimTemplates": [
                volume_claim_template(
                    "data",
                    domain.directory.storage.size,
                    domain.directory.storage.storage_class,
                    dc_selector(domain, index),
                ),
            ],
        },
    }
