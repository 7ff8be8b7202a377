"""The Samba domain controllers of a domain: one StatefulSet per DC, plus their Services.

Each DC is its own StatefulSet `<domain>-dc<i>` with one Pod, its own volume
and its own certificates, because DCs are not interchangeable replicas: each
has a computer name, an advertised address and an LDAPS certificate of its
own. dc0 provisions the domain (or joins an existing one,
spec.directory.bootstrap.join); the others join dc0. A Pod runs three
containers from images/samba: `dc` (es4ps-samba-dc), `worker`
(es4ps-worker), which talks to the DC beside it over ldap://127.0.0.1, and
`resolver` (dnsmasq: the Pod's own name resolution, builders.resolver).
Its health endpoint (port `health`) answers only the monitoring client
certificate, and passes on the worker's metrics, which listen on loopback.

Least privilege: no privileged mode, no SYS_ADMIN; the DC keeps NT ACLs in
user.* xattrs and needs only CHOWN, DAC_OVERRIDE, FOWNER, SETUID, SETGID and
NET_BIND_SERVICE. The worker runs as an unprivileged user without any
capability, on a read-only root file system, and never sees the
Administrator password: it binds as its own directory account, which the DC
creates with rights delegated on the managed OU only. Its record of applied
tasks lives in a directory of the DC's volume that the DC hands to it.

Services:
    <domain>-dc<i>        headless, that DC's own address (joins, and the StatefulSet's DNS)
    <domain>-directory    LDAP/LDAPS of every ready DC, for the portal's login checks
    <domain>-dc<i>-external  (networkMode Service) the DC's ports under spec.directory.serviceType
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from es4ps_contract.directory import MANAGED_OU, WORKER_ACCOUNT
from es4ps_contract.passwords import PasswordPolicy
from lightkube.utils.quantity import parse_quantity

from .. import naming
from ..config import OperatorConfig
from ..domain import Domain
from .common import (
    CONTAINER_READABLE,
    Manifest,
    admin_password_volume,
    broker_client_env,
    disruption_budget,
    env,
    env_from_field,
    exec_probe,
    memory_volume,
    mount,
    pod_template,
    restricted_security_context,
    secret_volume,
    service,
    statefulset,
    tls_volume,
)
from .monitoring import DC_HEALTH_PORT_NAME
from .resolver import pod_dns_config, resolver_container

DATA_DIR = "/var/lib/samba"
ADMIN_DIR = "/etc/es4ps/admin"
WORKER_CREDENTIALS_DIR = "/etc/es4ps/worker-credentials"
LDAPS_TLS_DIR = "/etc/es4ps/ldaps-tls"
BROKER_TLS_DIR = "/etc/es4ps/broker-tls"
KEYS_DIR = "/etc/es4ps/keys"
RESULT_KEY_DIR = "/etc/es4ps/result-key"
# The worker's record of applied tasks: this subdirectory of the DC's volume, owned by the worker's user.
WORKER_STATE_SUBPATH = "es4ps-worker"
WORKER_STATE_DIR = "/var/lib/es4ps-worker"
# The unprivileged user of images/samba (the worker runs as it).
WORKER_UID = 10001
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


def build_directory(domain: Domain, config: OperatorConfig, dcs: Mapping[int, str]) -> list[Manifest]:
    """Services and one StatefulSet per domain controller (`dcs`: index -> image)."""
    # A drain takes one DC at a time: the others keep serving logins and provisioning.
    manifests: list[Manifest] = [
        _directory_service(domain),
        disruption_budget(domain, naming.DIRECTORY, maxUnavailable=1),
    ]
    for index, image in sorted(dcs.items()):
        manifests.append(_dc_headless_service(domain, index))
        if not domain.directory.host_network:
            manifests.append(_dc_external_service(domain, index))
        manifests.append(_dc_statefulset(domain, config, index, image))
    return manifests


def dc_selector(domain: Domain, index: int) -> dict[str, str]:
    return naming.selector(domain, naming.DIRECTORY) | {naming.DC_INDEX_LABEL: str(index)}


def _service_port(name: str, port: int, protocol: str) -> dict[str, Any]:
    return {"name": name, "port": port, "targetPort": port, "protocol": protocol}


def _directory_service(domain: Domain) -> Manifest:
    spec = {
        "selector": naming.selector(domain, naming.DIRECTORY),
        "ports": [_service_port("ldap", 389, "TCP"), _service_port("ldaps", 636, "TCP")],
    }
    return service(domain, naming.directory_service(domain), naming.DIRECTORY, spec)


def _dc_headless_service(domain: Domain, index: int) -> Manifest:
    # Resolves straight to the DC's Pod address (its node's in HostNetwork mode), every port included.
    spec = {
        "clusterIP": "None",
        "publishNotReadyAddresses": True,
        "selector": dc_selector(domain, index),
        "ports": [_service_port("ldap", 389, "TCP")],
    }
    return service(domain, naming.dc(domain, index), naming.DIRECTORY, spec)


def _dc_external_service(domain: Domain, index: int) -> Manifest:
    directory = domain.directory
    spec: dict[str, Any] = {
        "type": directory.service_type,
        "selector": dc_selector(domain, index),
        "ports": [_service_port(name, port, protocol) for name, port, protocol in DC_PORTS],
    }
    if directory.service_type != "ClusterIP":
        # Keep the clients' addresses (Samba logs and policies see who connects).
        spec["externalTrafficPolicy"] = "Local"
    manifest = service(domain, naming.dc_external_service(domain, index), naming.DIRECTORY, spec)
    if directory.service_annotations:
        manifest["metadata"]["annotations"] = dict(directory.service_annotations)
    return manifest


def _advertised_ip_env(domain: Domain, index: int) -> dict[str, Any]:
    addresses = domain.directory.advertised_addresses
    if index < len(addresses):
        return env("ES4PS_HOST_IP", addresses[index])
    return env_from_field("ES4PS_HOST_IP", "status.hostIP" if domain.directory.host_network else "status.podIP")


def volume_bytes(size: str) -> int:
    """A volume's size in bytes from its Kubernetes quantity ("5Gi" -> 5368709120)."""
    return int(parse_quantity(size))


def samba_image(domain: Domain, config: OperatorConfig) -> str:
    """The image the DCs (and the Jobs acting on them) run: the domain's, if the operator allows it."""
    return domain.directory.image or config.images.samba


def dc_address_template(domain: Domain, config: OperatorConfig) -> str:
    """The DNS name of DC number {index}'s headless Service: its current address, whatever the zone says."""
    return f"{naming.child_name(domain, 'dc{index}')}.{domain.namespace}.svc.{config.cluster_domain}"


def dc_join_server(domain: Domain, config: OperatorConfig) -> str:
    """dc0's address (its headless Service): the DC others join, and Jobs act through."""
    return dc_address_template(domain, config).format(index=0)


def _domain_env(domain: Domain) -> list[dict[str, Any]]:
    """What both containers of a DC's Pod share: the domain, and the worker's account and OU."""
    return [
        env("ES4PS_REALM", domain.realm),
        env("ES4PS_NETBIOS_NAME", domain.netbios_name),
        env("ES4PS_USERS_OU", MANAGED_OU),
        env("ES4PS_WORKER_ACCOUNT", WORKER_ACCOUNT),
        env("ES4PS_WORKER_PASSWORD_FILE", f"{WORKER_CREDENTIALS_DIR}/password"),
    ]


def _dc_container(domain: Domain, config: OperatorConfig, index: int, image: str) -> dict[str, Any]:
    dc_env = [
        *_domain_env(domain),
        env("ES4PS_ADMIN_PASSWORD_FILE", f"{ADMIN_DIR}/password"),
        env("ES4PS_WORKER_UID", WORKER_UID),
        env("ES4PS_DC_HOSTNAME", naming.dc_hostname(domain, index)),
        _advertised_ip_env(domain, index),
        env("ES4PS_DATA_DIR", DATA_DIR),
        # The DC derives its database's map size from its volume's size (es4ps_samba.dc.store).
        env("ES4PS_DATA_VOLUME_BYTES", volume_bytes(domain.directory.storage.size)),
        env("ES4PS_TLS_CERT_FILE", f"{LDAPS_TLS_DIR}/tls.crt"),
        env("ES4PS_TLS_KEY_FILE", f"{LDAPS_TLS_DIR}/tls.key"),
        env("ES4PS_TLS_CA_FILE", f"{LDAPS_TLS_DIR}/ca.crt"),
        env("ES4PS_DC_ROLE", "provision" if index == 0 and not domain.directory.join_server else "join"),
        # A DC whose Pod moved is written into the zone at its new address by every DC (es4ps_samba.dc.peers).
        env("ES4PS_PEER_ADDRESS_TEMPLATE", dc_address_template(domain, config)),
        # The health endpoint answers the monitoring certificate only, and passes the worker's metrics on.
        env("ES4PS_HEALTH_CLIENT", naming.MONITORING_CLIENT),
        env("ES4PS_WORKER_METRICS_URL", f"http://127.0.0.1:{naming.WORKER_METRICS_PORT}/metrics"),
    ]
    if index > 0:
        dc_env.append(env("ES4PS_JOIN_SERVER", dc_join_server(domain, config)))
    else:
        # One DC writes the domain-wide policy (it replicates to the others); a change restarts only dc0,
        # while the other DCs keep serving. Only what a DC applies (to_json(directory=True)).
        policy = PasswordPolicy.from_json(domain.directory.password_policy).to_json(directory=True)
        dc_env.append(env("ES4PS_PASSWORD_POLICY", policy))
    if domain.directory.join_server:
        # dc0 joins the existing domain; its settings stay that domain's until its old DCs are demoted.
        dc_env.append(env("ES4PS_DOMAIN_SETTINGS", "when-only-ours"))
        if index == 0:
            dc_env.append(env("ES4PS_JOIN_SERVER", domain.directory.join_server))
    if domain.directory.dns_forwarder:
        # What Samba forwards outsiders' other names to: only what the spec says, never the cluster's DNS.
        dc_env.append(env("ES4PS_DNS_FORWARDER", domain.directory.dns_forwarder))
    live = ["es4ps-samba-dc", "live"]
    return {
        "name": "dc",
        "image": image,
        "imagePullPolicy": config.images.pull_policy,
        "command": ["es4ps-samba-dc", "run"],
        "env": dc_env,
        "ports": [
            *({"name": name, "containerPort": port, "protocol": protocol} for name, port, protocol in DC_PORTS),
            {"name": DC_HEALTH_PORT_NAME, "containerPort": naming.DC_HEALTH_PORT, "protocol": "TCP"},
        ],
        # Provisioning or joining takes a while on first start; liveness waits for it.
        "startupProbe": exec_probe(live, period_s=5, failures=120, timeout_s=10),
        "livenessProbe": exec_probe(live, period_s=30, failures=4, timeout_s=10),
        "readinessProbe": exec_probe(["es4ps-samba-dc", "ready"], period_s=10, failures=3, timeout_s=10),
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
            mount("worker-credentials", WORKER_CREDENTIALS_DIR),
            mount("ldaps-tls", LDAPS_TLS_DIR),
        ],
    }


# The worker's variables that say which directory it binds to, as whom, and which OU it manages.
DIRECTORY_VARIABLES = frozenset(
    {"ES4PS_LDAP_URL", "ES4PS_USERS_OU", "ES4PS_WORKER_ACCOUNT", "ES4PS_WORKER_PASSWORD_FILE"}
)


def external_worker_container(
    domain: Domain, config: OperatorConfig, name: str, image: str, directory: list[dict[str, Any]]
) -> dict[str, Any]:
    """The worker container of the external worker (builders.external) called `name`, bound to the directory
    that `directory` (its DIRECTORY_VARIABLES) names; the only worker, so it creates what policies name."""
    container = _worker_container(domain, config, name, True, image)
    kept = [variable for variable in container["env"] if variable["name"] not in DIRECTORY_VARIABLES]
    container["env"] = [*kept, *directory]
    return container


def _worker_container(
    domain: Domain, config: OperatorConfig, name: str, creates_containers: bool, image: str
) -> dict[str, Any]:
    return {
        "name": "worker",
        "image": image,
        "imagePullPolicy": config.images.pull_policy,
        "command": ["es4ps-worker"],
        "env": [
            *_domain_env(domain),
            *broker_client_env(domain, config.cluster_domain, BROKER_TLS_DIR),
            env("ES4PS_SEALING_PRIVATE_KEY_FILE", f"{KEYS_DIR}/sealing-private.key"),
            env("ES4PS_SIGNING_PUBLIC_KEY_FILE", f"{KEYS_DIR}/signing-public.key"),
            env("ES4PS_RESULT_SIGNING_KEY_FILE", f"{RESULT_KEY_DIR}/private.key"),
            env("ES4PS_LDAP_URL", "ldap://127.0.0.1"),
            env("ES4PS_WORKER_STATE_DIR", WORKER_STATE_DIR),
            env("ES4PS_WORKER_NAME", name),
            env("ES4PS_WORKER_CREATES_CONTAINERS", "1" if creates_containers else "0"),
            env("ES4PS_WORKER_METRICS_PORT", naming.WORKER_METRICS_PORT),
            # Loopback only: the DC's health endpoint passes them on, behind its client certificate.
            env("ES4PS_WORKER_METRICS_ADDRESS", "127.0.0.1"),
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": restricted_security_context(WORKER_UID),
        "volumeMounts": [
            mount("worker-credentials", WORKER_CREDENTIALS_DIR),
            mount("broker-tls", BROKER_TLS_DIR),
            mount("worker-keys", KEYS_DIR),
            mount("result-key", RESULT_KEY_DIR),
            mount("tmp", "/tmp", read_only=False),
            {"name": "data", "mountPath": WORKER_STATE_DIR, "subPath": WORKER_STATE_SUBPATH, "readOnly": False},
        ],
    }


def worker_volumes(domain: Domain, worker: naming.WorkerIdentity) -> list[dict[str, Any]]:
    """The volumes of `worker`'s own secrets (broker certificate, task keys, result key) and its /tmp."""
    worker_keys = {"sealing-private.key": "sealing-private.key", "signing-public.key": "signing-public.key"}
    return [
        tls_volume("broker-tls", worker.broker_tls, mode=CONTAINER_READABLE),
        secret_volume("worker-keys", naming.task_keys_secret(domain), worker_keys, mode=CONTAINER_READABLE),
        secret_volume("result-key", worker.result_key, {"private.key": "private.key"}, mode=CONTAINER_READABLE),
        memory_volume("tmp"),
    ]


def dc_volumes(domain: Domain, index: int) -> list[dict[str, Any]]:
    """The secret and memory volumes of DC `index`'s Pod (its data volume comes from its claim template)."""
    return [
        admin_password_volume(domain),
        secret_volume(
            "worker-credentials",
            naming.worker_credentials_secret(domain),
            {"password": "password"},
            mode=CONTAINER_READABLE,
        ),
        tls_volume("ldaps-tls", naming.dc_ldaps_tls(domain, index)),
        *worker_volumes(domain, naming.dc_worker(domain, index)),
    ]


def _dc_pod_spec(domain: Domain, config: OperatorConfig, index: int, image: str) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": domain.directory.host_network,
        # The realm through the DC's Samba, the cluster's names through the cluster's DNS (builders.resolver).
        "dnsPolicy": "None",
        "dnsConfig": pod_dns_config(domain, config),
        # No fsGroup: it would re-own the directory's volume, whose owners Samba relies on.
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 60,
        # The resolver first: the kubelet starts it before the DC, which may have to find dc0 to join.
        "containers": [
            resolver_container(domain, config, image),
            _dc_container(domain, config, index, image),
            # Only dc0's worker creates policies' OUs and groups: two DCs creating the same group at once
            # would leave two of one name once they replicate. The others wait for them to replicate.
            _worker_container(domain, config, naming.dc(domain, index), index == 0, image),
        ],
        "volumes": dc_volumes(domain, index),
    }
    every_dc = naming.selector(domain, naming.DIRECTORY)
    if domain.directory.host_network:
        # DCs on the host network bind the node's ports: one per node, whatever else is asked.
        pod_spec["affinity"] = {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": every_dc}, "topologyKey": "kubernetes.io/hostname"}
                ]
            }
        }
    return pod_spec


def _dc_statefulset(domain: Domain, config: OperatorConfig, index: int, image: str) -> Manifest:
    labels = naming.labels(domain, naming.DIRECTORY) | {naming.DC_INDEX_LABEL: str(index)}
    return statefulset(
        domain,
        naming.dc(domain, index),
        naming.DIRECTORY,
        dc_selector(domain, index),
        replicas=1,
        pod=pod_template(
            domain,
            naming.DIRECTORY,
            domain.directory.placement,
            _dc_pod_spec(domain, config, index, image),
            main=("dc",),
            labels=labels,
            # `kubectl logs` and `exec` mean the DC when no container is named.
            annotations={"kubectl.kubernetes.io/default-container": "dc"},
        ),
        storage=domain.directory.storage,
    )
