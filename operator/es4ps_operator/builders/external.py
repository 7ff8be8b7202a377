"""External mode: the one worker that provisions into a directory the organisation runs (no DC of ours).

A Deployment `<domain>-worker` with one Pod running the same container as the
worker beside a DC (es4ps-worker, images/samba), pointed at
`spec.directory.external.url` over LDAPS with the CA of `caSecretRef`, bound as
the delegated account of `credentialsSecretRef`, managing `ou`. It has an
identity of its own (naming.workers): the name `<domain>-worker` in result
events, the broker client certificate `<domain>-worker-tls` (the workers'
broker user, as beside a DC) and the result key `<domain>-worker-result-key`,
whose public half the portal mounts as it does the DCs' workers'. Its record
of applied tasks lives on a volume of its own, created once
(`worker_state_claim`), so a restarted Pod still applies a task id only once;
one Pod at a time (Recreate) owns it.

When the worker refuses to run (a certificate its CA does not verify, wrong
credentials, an OU that is not there, an account with too many rights; see
es4ps_samba.worker.startcheck) it says why in its last log line, which the kubelet keeps as the
termination message (FallbackToLogsOnError); the operator reads it back into
DirectoryReady (es4ps_operator.external.worker_refusal).
"""

from __future__ import annotations

from typing import Any

from .. import naming
from ..config import OperatorConfig
from ..domain import Domain, Storage
from .common import (
    CONTAINER_READABLE,
    Manifest,
    env,
    env_from_field,
    env_from_secret,
    http_probe,
    metadata,
    mount,
    pod_template,
    secret_volume,
    volume_claim,
)
from .directory import (
    WORKER_CREDENTIALS_DIR,
    WORKER_STATE_DIR,
    WORKER_UID,
    external_worker_container,
    samba_image,
    worker_volumes,
)

DIRECTORY_CA_DIR = "/etc/es4ps/directory-ca"
# The record of applied tasks is a few kilobytes a day.
STATE_SIZE = "1Gi"


def worker_state_claim(domain: Domain) -> Manifest:
    """The worker's volume, created once and never owned by the domain (it follows deletionPolicy as DC
    volumes do)."""
    storage = Storage(STATE_SIZE, domain.directory.storage.storage_class)
    return volume_claim(domain, naming.external_worker(domain), storage, naming.DIRECTORY)


def _container(domain: Domain, config: OperatorConfig) -> dict[str, Any]:
    external = domain.directory.external
    assert external is not None
    directory_env = [
        env("ES4PS_LDAP_URL", external.url),
        env("ES4PS_LDAP_CA_FILE", f"{DIRECTORY_CA_DIR}/ca.crt"),
        env("ES4PS_USERS_OU", external.ou),
        env_from_secret("ES4PS_WORKER_ACCOUNT", external.credentials_secret, external.username_key),
        env("ES4PS_WORKER_PASSWORD_FILE", f"{WORKER_CREDENTIALS_DIR}/password"),
    ]
    name = naming.external_worker_identity(domain).name
    container = external_worker_container(domain, config, name, samba_image(domain, config), directory_env)
    container["volumeMounts"] = [
        *(m for m in container["volumeMounts"] if m["name"] != "data"),
        mount("directory-ca", DIRECTORY_CA_DIR),
        mount("state", WORKER_STATE_DIR, read_only=False),
    ]
    # No DC's health endpoint beside it to pass its metrics on: they listen on its own Pod address (not the
    # host network), for Prometheus and the readiness probe.
    container["env"] = [
        *(variable for variable in container["env"] if variable["name"] != "ES4PS_WORKER_METRICS_ADDRESS"),
        env_from_field("ES4PS_WORKER_METRICS_ADDRESS", "status.podIP"),
    ]
    container["ports"] = [
        {"name": naming.WORKER_METRICS_PORT_NAME, "containerPort": naming.WORKER_METRICS_PORT, "protocol": "TCP"}
    ]
    # Its refusal to run (the last log line) becomes the termination message the operator reads.
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    # The metrics port opens once the account passed the check and the directory answered: ready means
    # the worker takes tasks (DirectoryReady follows it).
    container["readinessProbe"] = http_probe("/metrics", naming.WORKER_METRICS_PORT_NAME, period_s=10)
    return container


def _volumes(domain: Domain) -> list[dict[str, Any]]:
    external = domain.directory.external
    assert external is not None
    return [
        *worker_volumes(domain, naming.external_worker_identity(domain)),
        secret_volume(
            "worker-credentials",
            external.credentials_secret,
            {external.password_key: "password"},
            mode=CONTAINER_READABLE,
        ),
        secret_volume("directory-ca", external.ca_secret, {external.ca_key: "ca.crt"}),
        {"name": "state", "persistentVolumeClaim": {"claimName": naming.external_worker(domain)}},
    ]


def build_external_worker(domain: Domain, config: OperatorConfig) -> list[Manifest]:
    """The external worker's Deployment (its volume: `worker_state_claim`)."""
    pod_spec = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # The volume's files belong to the worker's group (it runs as the image's unprivileged user).
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "fsGroup": WORKER_UID},
        "terminationGracePeriodSeconds": 60,
        "containers": [_container(domain, config)],
        "volumes": _volumes(domain),
    }
    pod = pod_template(domain, naming.DIRECTORY, domain.directory.placement, pod_spec, main=("worker",))
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(domain, naming.external_worker(domain), naming.DIRECTORY),
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": naming.selector(domain, naming.DIRECTORY)},
                "template": pod,
            },
        }
    ]
