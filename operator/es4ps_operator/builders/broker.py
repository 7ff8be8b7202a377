"""The RabbitMQ broker of a domain: ConfigMap, headless Service and a StatefulSet of 1 or 3 (5, 7) nodes.

The broker listens only on 5671 with TLS (1.2 and 1.3, ECDHE with AEAD
ciphers), requires a client certificate signed by the domain's CA and logs the
client in as the user named by the certificate's common name (EXTERNAL), so no
component holds a broker password.
Users, permissions and the two queues come from definitions loaded at boot.
The configuration is written for RabbitMQ 3.10 (Debian 12) and later: new-style
rabbitmq.conf, an enabled_plugins file, `load_definitions`.

A clustered broker (spec.broker.replicas 3, 5 or 7) finds its peers by their
StatefulSet names (classic_config: stable DNS names need no API access, so the
Pods keep running without a ServiceAccount token), talks Erlang distribution
over TLS with the broker's own certificate, keeps the two queues as quorum
queues replicated on every node, and pauses a minority side of a partition.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from es4ps_contract.tasks import PROVISIONING_QUEUE, RESULTS_QUEUE
from lightkube.utils.quantity import parse_quantity

from .. import naming
from ..config import OperatorConfig
from ..domain import Domain
from .common import (
    Manifest,
    content_hash,
    disruption_budget,
    env,
    env_from_field,
    memory_volume,
    merged_resources,
    metadata,
    mount,
    pod_template,
    restricted_security_context,
    secret_volume,
    service,
    statefulset,
    tls_volume,
)
from .monitoring import BROKER_METRICS_PORT, BROKER_METRICS_PORT_NUMBER

CONFIG_DIR = "/etc/rabbitmq"
TLS_DIR = "/etc/es4ps/broker-tls"
DATA_DIR = "/var/lib/rabbitmq"
# The uid of the rabbitmq user in the official image; fsGroup makes the volume writable for it.
RABBITMQ_UID = 999
# The broker container's requests and limits unless the domain's spec.broker.resources says otherwise.
RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}


# Every TLS listener of the broker (AMQPS, and the nodes' Erlang distribution): TLS 1.2 and 1.3 only, ECDHE
# key exchange with AEAD ciphers (no CBC, RC4, 3DES, NULL or anonymous suite), in the server's order.
TLS_VERSIONS = ("tlsv1.3", "tlsv1.2")
TLS_CIPHERS = (
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305",
)

# Where the Pod's broker logs: the console (kubectl logs), nothing on disk.
POD_LOGGING = {"log.console": "true", "log.console.level": "info", "log.file": "false"}


def rabbitmq_conf(
    listener: str = str(naming.BROKER_PORT),
    tls_dir: str = TLS_DIR,
    definitions_file: str = f"{CONFIG_DIR}/definitions.json",
    extra: Mapping[str, str] = POD_LOGGING,
    memory_bytes: int = int(parse_quantity(RESOURCES["limits"]["memory"])),
) -> str:
    """rabbitmq.conf: the TLS listener only, peer certificates required, login from the certificate's CN.

    The tests' broker runs this same configuration with its own port, files and logging.
    """
    settings = {
        "listeners.tcp": "none",
        "listeners.ssl.default": listener,
        "ssl_options.cacertfile": f"{tls_dir}/ca.crt",
        "ssl_options.certfile": f"{tls_dir}/tls.crt",
        "ssl_options.keyfile": f"{tls_dir}/tls.key",
        "ssl_options.verify": "verify_peer",
        "ssl_options.fail_if_no_peer_cert": "true",
        **{f"ssl_options.versions.{n}": version for n, version in enumerate(TLS_VERSIONS, 1)},
        **{f"ssl_options.ciphers.{n}": cipher for n, cipher in enumerate(TLS_CIPHERS, 1)},
        "ssl_options.honor_cipher_order": "true",
        "ssl_options.honor_ecc_order": "true",
        # A client may not renegotiate (a CPU sink); renegotiation is RFC 5746's secure kind only.
        "ssl_options.client_renegotiation": "false",
        "ssl_options.secure_renegotiate": "true",
        # Clients log in as the common name of their certificate; no passwords exist.
        "auth_mechanisms.1": "EXTERNAL",
        "ssl_cert_login_from": "common_name",
        "load_definitions": definitions_file,
        # RabbitMQ sizes its memory alarm from the host's memory unless told the container's limit.
        "total_memory_available_override_value": str(memory_bytes),
        # rabbitmq_prometheus: per-queue series (two queues), so alerts can name the provisioning queue.
        "prometheus.return_per_object_metrics": "true",
        **extra,
    }
    lines = ["# Written by the es4ps operator. TLS only: no plain AMQP listener."]
    return "\n".join(lines + [f"{name} = {value}" for name, value in settings.items()]) + "\n"


ENABLED_PLUGINS = "[rabbitmq_auth_mechanism_ssl,rabbitmq_prometheus].\n"


def _exactly(*names: str) -> str:
    """A RabbitMQ permission regex matching exactly these resource names."""
    return "^(" + "|".join(re.escape(name) for name in names) + ")$"


def broker_definitions(queue_type: str = "classic", nodes: int = 1) -> dict[str, Any]:
    """The vhost, the password-less users, their least privileges and the queues the broker starts with.

    The topology (queues, their same-named direct exchanges, the bindings) is
    declared here, and clients never declare anything (the contract's queues
    are `no_declare`), so nobody has the configure permission. The portal
    publishes tasks and reads results; a worker reads tasks, publishes results
    and republishes the tasks it retries.
    """
    vhost, queues = naming.BROKER_VHOST, (PROVISIONING_QUEUE, RESULTS_QUEUE)
    queue_arguments = {"x-queue-type": "quorum", "x-quorum-initial-group-size": nodes} if queue_type == "quorum" else {}

    def permissions(user: str, writes: tuple[str, ...], reads: str) -> dict[str, str]:
        return {"user": user, "vhost": vhost, "configure": "^$", "write": _exactly(*writes), "read": _exactly(reads)}

    return {
        "vhosts": [{"name": vhost}],
        # An empty hash: the user cannot log in with a password at all.
        "users": [
            {"name": user, "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}
            for user in (naming.PORTAL_BROKER_USER, naming.WORKER_BROKER_USER)
        ],
        "permissions": [
            permissions(naming.PORTAL_BROKER_USER, (PROVISIONING_QUEUE,), RESULTS_QUEUE),
            permissions(naming.WORKER_BROKER_USER, queues, PROVISIONING_QUEUE),
        ],
        "queues": [
            {"name": queue, "vhost": vhost, "durable": True, "auto_delete": False, "arguments": queue_arguments}
            for queue in queues
        ],
        "exchanges": [
            {
                "name": queue,
                "vhost": vhost,
                "type": "direct",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for queue in queues
        ],
        "bindings": [
            {
                "source": queue,
                "vhost": vhost,
                "destination": queue,
                "destination_type": "queue",
                "routing_key": queue,
                "arguments": {},
            }
            for queue in queues
        ],
    }


def node_host(domain: Domain, cluster_domain: str, index: int) -> str:
    """The stable DNS name of node `index` of a clustered broker (its Pod behind the nodes' Service)."""
    return f"{naming.broker(domain)}-{index}.{naming.broker_nodes(domain)}.{domain.namespace}.svc.{cluster_domain}"


def cluster_settings(domain: Domain, cluster_domain: str) -> dict[str, str]:
    """rabbitmq.conf settings of a clustered broker: its peers by name, and what a partition does."""
    settings = {
        "cluster_formation.peer_discovery_backend": "classic_config",
        # A minority side of a partition stops serving until it sees the majority again (no split brain).
        "cluster_partition_handling": "pause_minority",
        "queue_leader_locator": "balanced",
    }
    for index in range(domain.broker.replicas):
        settings[f"cluster_formation.classic_config.nodes.{index + 1}"] = (
            f"rabbit@{node_host(domain, cluster_domain, index)}"
        )
    return settings


def inter_node_tls_config(tls_dir: str = TLS_DIR) -> str:
    """Erlang's ssl_dist_optfile: nodes of a cluster talk TLS both ways, each showing the broker certificate."""
    files = f'{{cacertfile, "{tls_dir}/ca.crt"}}, {{certfile, "{tls_dir}/tls.crt"}}, {{keyfile, "{tls_dir}/tls.key"}}'
    versions = ", ".join(f"'{version}'" for version in TLS_VERSIONS)
    ciphers = ", ".join(f'"{cipher}"' for cipher in TLS_CIPHERS)
    protocol = f"{{versions, [{versions}]}}, {{ciphers, [{ciphers}]}}"
    both = f"{files}, {protocol}, {{verify, verify_peer}}, {{secure_renegotiate, true}}"
    server = f"{both}, {{fail_if_no_peer_cert, true}}, {{honor_cipher_order, true}}, {{client_renegotiation, false}}"
    client = both
    return f"[\n  {{server, [{server}]}},\n  {{client, [{client}]}}\n].\n"


def memory_limit_bytes(domain: Domain) -> int:
    """The broker container's memory limit (the domain's or the default), which RabbitMQ's alarm is sized from."""
    return int(parse_quantity(merged_resources(RESOURCES, domain.broker.placement.resources)["limits"]["memory"]))


def tls_distribution_args(optfile: str) -> str:
    """Erlang's arguments for distribution over TLS with `optfile` (inter_node_tls_config's content)."""
    return f"-proto_dist inet_tls -ssl_dist_optfile {optfile}"


def build_broker(domain: Domain, config: OperatorConfig) -> list[Manifest]:
    """ConfigMap, headless Service, StatefulSet and PodDisruptionBudget of the domain's broker."""
    name = naming.broker(domain)
    clustered = domain.broker.clustered
    queue_type = "quorum" if clustered else "classic"
    conf = rabbitmq_conf(
        extra={**POD_LOGGING, **(cluster_settings(domain, config.cluster_domain) if clustered else {})},
        memory_bytes=int(
            parse_quantity(merged_resources(RESOURCES, domain.broker.placement.resources)["limits"]["memory"])
        ),
    )
    config_data = {
        "rabbitmq.conf": conf,
        "enabled_plugins": ENABLED_PLUGINS,
        "definitions.json": json.dumps(broker_definitions(queue_type, domain.broker.replicas), indent=2, sort_keys=True)
        + "\n",
    }
    if clustered:
        config_data["inter_node_tls.config"] = inter_node_tls_config()
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(domain, name, naming.BROKER),
        "data": config_data,
    }
    headless = service(
        domain,
        name,
        naming.BROKER,
        {
            "clusterIP": "None",
            "selector": naming.selector(domain, naming.BROKER),
            "ports": [{"name": "amqps", "port": naming.BROKER_PORT, "targetPort": "amqps", "protocol": "TCP"}],
        },
    )
    manifests = [config_map, headless]
    if clustered:
        # The nodes' own names, published before they are ready: a node must reach its peers to boot.
        manifests.append(
            service(
                domain,
                naming.broker_nodes(domain),
                naming.BROKER,
                {
                    "clusterIP": "None",
                    "publishNotReadyAddresses": True,
                    "selector": naming.selector(domain, naming.BROKER),
                    "ports": [
                        {"name": "epmd", "port": 4369, "targetPort": 4369, "protocol": "TCP"},
                        {"name": "cluster", "port": 25672, "targetPort": 25672, "protocol": "TCP"},
                    ],
                },
            )
        )
    # A cluster keeps a majority through drains; one node can only go.
    budget = {"minAvailable": domain.broker.replicas // 2 + 1} if clustered else {"maxUnavailable": 1}
    return [
        *manifests,
        _statefulset(domain, config, content_hash(config_data)),
        disruption_budget(domain, naming.BROKER, **budget),
    ]


COOKIE_DIR = "/etc/es4ps/erlang-cookie"


# A quorum queue gets members only on the nodes running when it is declared (the definitions, at the first
# node's start): each node adds itself to every quorum queue once it runs, so the queues of a cluster that
# formed one node at a time have a member on every node. In the background: a postStart hook holds the
# container short of Running (no probe, not Ready) until it returns, and a member that serves must count as
# Ready at once (a drain waits on the broker's budget for it; a returning member is already in every queue).
# Never fails: a node that could not join keeps serving, and the next start tries again.
JOIN_QUORUM_QUEUES = (
    "for attempt in $(seq 60); do"
    " rabbitmq-diagnostics -q check_running >/dev/null 2>&1"
    ' && rabbitmq-queues -q grow "$RABBITMQ_NODENAME" all >/dev/null 2>&1 && exit 0;'
    " sleep 5; done"
)
JOIN_QUORUM_QUEUES_IN_BACKGROUND = f"({JOIN_QUORUM_QUEUES}) </dev/null >/dev/null 2>&1 &"


def _node_env(domain: Domain, config: OperatorConfig) -> list[dict[str, Any]]:
    """The node's name, and for a cluster its Erlang distribution over TLS (also for rabbitmqctl in the Pod)."""
    if not domain.broker.clustered:
        # A fixed node name keeps the data directory valid whatever the Pod's host name is.
        return [env("RABBITMQ_NODENAME", "rabbit@localhost")]
    nodes = f"{naming.broker_nodes(domain)}.{domain.namespace}.svc.{config.cluster_domain}"
    tls_dist = tls_distribution_args(f"{CONFIG_DIR}/inter_node_tls.config")
    return [
        env_from_field("POD_NAME", "metadata.name"),
        env("RABBITMQ_USE_LONGNAME", "true"),
        env("RABBITMQ_NODENAME", f"rabbit@$(POD_NAME).{nodes}"),
        env("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", tls_dist),
        env("RABBITMQ_CTL_ERL_ARGS", tls_dist),
    ]


def _cookie_init_container(image: str, pull_policy: str) -> dict[str, Any]:
    """Copies the cluster's Erlang cookie into the volume: Erlang wants it owned by the node's user, mode 0400."""
    cookie = f"{DATA_DIR}/.erlang.cookie"
    return {
        "name": "erlang-cookie",
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": [
            "sh",
            "-c",
            f'install -m 0400 "{COOKIE_DIR}/cookie" "{cookie}.new" && mv -f "{cookie}.new" "{cookie}"',
        ],
        "securityContext": restricted_security_context(),
        "volumeMounts": [mount("erlang-cookie", COOKIE_DIR), mount("data", DATA_DIR, read_only=False)],
    }


def _container(domain: Domain, config: OperatorConfig, image: str) -> dict[str, Any]:
    """The rabbitmq container: TLS port, metrics, the cluster's ports when clustered, a read-only root."""
    tcp_probe = {"tcpSocket": {"port": "amqps"}}
    clustered = domain.broker.clustered
    ports = [
        {"name": "amqps", "containerPort": naming.BROKER_PORT, "protocol": "TCP"},
        {"name": BROKER_METRICS_PORT, "containerPort": BROKER_METRICS_PORT_NUMBER, "protocol": "TCP"},
    ]
    if clustered:
        ports += [
            {"name": "epmd", "containerPort": 4369, "protocol": "TCP"},
            {"name": "cluster", "containerPort": 25672, "protocol": "TCP"},
        ]
    container = {
        "name": "rabbitmq",
        "image": image,
        "imagePullPolicy": config.images.pull_policy,
        "env": [
            *_node_env(domain, config),
            env("RABBITMQ_CONFIG_FILE", f"{CONFIG_DIR}/rabbitmq.conf"),
            env("RABBITMQ_ENABLED_PLUGINS_FILE", f"{CONFIG_DIR}/enabled_plugins"),
            env("HOME", DATA_DIR),
        ],
        "ports": ports,
        "readinessProbe": tcp_probe | {"periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": tcp_probe | {"initialDelaySeconds": 60, "periodSeconds": 30, "failureThreshold": 5},
        "resources": RESOURCES,
        # Read-only root: RabbitMQ writes its volume, and scratch files to /tmp and its log directory.
        "securityContext": restricted_security_context(),
        "volumeMounts": [
            mount("config", CONFIG_DIR),
            mount("tls", TLS_DIR),
            mount("data", DATA_DIR, read_only=False),
            mount("tmp", "/tmp", read_only=False),
            mount("logs", "/var/log/rabbitmq", read_only=False),
        ],
    }
    if clustered:
        container["lifecycle"] = {"postStart": {"exec": {"command": ["sh", "-c", JOIN_QUORUM_QUEUES_IN_BACKGROUND]}}}
    return container


def _statefulset(domain: Domain, config: OperatorConfig, config_hash: str) -> Manifest:
    image = domain.broker.image or config.images.broker
    clustered = domain.broker.clustered
    volumes = [
        {"name": "config", "configMap": {"name": naming.broker(domain)}},
        tls_volume("tls", naming.broker_tls(domain)),
        memory_volume("tmp"),
        memory_volume("logs"),
    ]
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsUser": RABBITMQ_UID,
            "runAsGroup": RABBITMQ_UID,
            "fsGroup": RABBITMQ_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 60,
        "containers": [_container(domain, config, image)],
        "volumes": volumes,
    }
    spec: dict[str, Any] = {}
    if clustered:
        pod_spec["initContainers"] = [_cookie_init_container(image, config.images.pull_policy)]
        volumes.append(secret_volume("erlang-cookie", naming.broker_cookie_secret(domain), {"cookie": "cookie"}))
        # Nodes boot together (each waits for its peers); a rolling update still goes one Pod at a time.
        spec = {"serviceName": naming.broker_nodes(domain), "podManagementPolicy": "Parallel"}
    pod = pod_template(
        domain,
        naming.BROKER,
        domain.broker.placement,
        pod_spec,
        main=("rabbitmq",),
        annotations={naming.CONFIG_HASH_ANNOTATION: config_hash},
    )
    selector = naming.selector(domain, naming.BROKER)
    return statefulset(
        domain,
        naming.broker(domain),
        naming.BROKER,
        selector,
        replicas=domain.broker.replicas,
        pod=pod,
        storage=domain.broker.storage,
        **spec,
    )
