"""The RabbitMQ broker of a domain: ConfigMap, headless Service and a one-Pod StatefulSet.

The broker listens only on 5671 with TLS, requires a client certificate signed
by the domain's CA and logs the client in as the user named by the
certificate's common name (EXTERNAL), so no component holds a broker password.
Users, permissions and the two queues come from definitions loaded at boot.
The configuration is written for RabbitMQ 3.10 (Debian 12) and later: new-style
rabbitmq.conf, an enabled_plugins file, `load_definitions`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from es4ps_contract.tasks import PROVISIONING_QUEUE, RESULTS_QUEUE

from .. import naming
from ..config import OperatorConfig
from ..domain import Domain
from .common import (
    Manifest,
    content_hash,
    env,
    memory_volume,
    metadata,
    mount,
    restricted_security_context,
    service,
    statefulset,
    tls_volume,
)

CONFIG_DIR = "/etc/rabbitmq"
TLS_DIR = "/etc/es4ps/broker-tls"
DATA_DIR = "/var/lib/rabbitmq"
# The uid of the rabbitmq user in the official image; fsGroup makes the volume writable for it.
RABBITMQ_UID = 999
MEMORY_LIMIT = "512Mi"
# RabbitMQ sizes its memory alarm from the host's memory unless told the container's limit.
MEMORY_LIMIT_BYTES = 512 * 1024 * 1024


# Where the Pod's broker logs: the console (kubectl logs), nothing on disk.
POD_LOGGING = {"log.console": "true", "log.console.level": "info", "log.file": "false"}


def rabbitmq_conf(
    listener: str = str(naming.BROKER_PORT),
    tls_dir: str = TLS_DIR,
    definitions_file: str = f"{CONFIG_DIR}/definitions.json",
    extra: Mapping[str, str] = POD_LOGGING,
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
        # Clients log in as the common name of their certificate; no passwords exist.
        "auth_mechanisms.1": "EXTERNAL",
        "ssl_cert_login_from": "common_name",
        "load_definitions": definitions_file,
        "total_memory_available_override_value": str(MEMORY_LIMIT_BYTES),
        **extra,
    }
    lines = ["# Written by the es4ps operator. TLS only: no plain AMQP listener."]
    return "\n".join(lines + [f"{name} = {value}" for name, value in settings.items()]) + "\n"


ENABLED_PLUGINS = "[rabbitmq_auth_mechanism_ssl].\n"


def _exactly(*names: str) -> str:
    """A RabbitMQ permission regex matching exactly these resource names."""
    return "^(" + "|".join(re.escape(name) for name in names) + ")$"


def broker_definitions() -> dict[str, Any]:
    """The vhost, the password-less users, their least privileges and the queues the broker starts with.

    The topology (queues, their same-named direct exchanges, the bindings) is
    declared here, and clients never declare anything (the contract's queues
    are `no_declare`), so nobody has the configure permission. The portal
    publishes tasks and reads results; a worker reads tasks, publishes results
    and republishes the tasks it retries.
    """
    vhost, queues = naming.BROKER_VHOST, (PROVISIONING_QUEUE, RESULTS_QUEUE)

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
            {"name": queue, "vhost": vhost, "durable": True, "auto_delete": False, "arguments": {}} for queue in queues
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


def build_broker(domain: Domain, config: OperatorConfig) -> list[Manifest]:
    """ConfigMap, headless Service and StatefulSet of the domain's broker."""
    name = naming.broker(domain)
    config_data = {
        "rabbitmq.conf": rabbitmq_conf(),
        "enabled_plugins": ENABLED_PLUGINS,
        "definitions.json": json.dumps(broker_definitions(), indent=2, sort_keys=True) + "\n",
    }
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
    return [config_map, headless, _statefulset(domain, config, content_hash(config_data))]


def _statefulset(domain: Domain, config: OperatorConfig, config_hash: str) -> Manifest:
    tcp_probe = {"tcpSocket": {"port": "amqps"}}
    container = {
        "name": "rabbitmq",
        "image": domain.broker.image or config.images.broker,
        "imagePullPolicy": config.images.pull_policy,
        "env": [
            # A fixed node name keeps the data directory valid whatever the Pod's host name is.
            env("RABBITMQ_NODENAME", "rabbit@localhost"),
            env("RABBITMQ_CONFIG_FILE", f"{CONFIG_DIR}/rabbitmq.conf"),
            env("RABBITMQ_ENABLED_PLUGINS_FILE", f"{CONFIG_DIR}/enabled_plugins"),
            env("HOME", DATA_DIR),
        ],
        "ports": [{"name": "amqps", "containerPort": naming.BROKER_PORT, "protocol": "TCP"}],
        "readinessProbe": tcp_probe | {"periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": tcp_probe | {"initialDelaySeconds": 60, "periodSeconds": 30, "failureThreshold": 5},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": MEMORY_LIMIT}},
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
    pod_spec = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsUser": RABBITMQ_UID,
            "runAsGroup": RABBITMQ_UID,
            "fsGroup": RABBITMQ_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": naming.broker(domain)}},
            tls_volume("tls", naming.broker_tls(domain)),
            memory_volume("tmp"),
            memory_volume("logs"),
        ],
    }
    pod_metadata = {
        "labels": naming.labels(domain, naming.BROKER),
        "annotations": {naming.CONFIG_HASH_ANNOTATION: config_hash},
    }
    return statefulset(
        domain,
        naming.broker(domain),
        naming.BROKER,
        naming.selector(domain, naming.BROKER),
        replicas=1,
        pod={"metadata": pod_metadata, "spec": pod_spec},
        storage=domain.broker.storage,
    )
