"""Names, labels and annotations of a domain's children: the one place that spells them.

Every child is named "<domain>-<component>[-<part>]" in the domain's namespace
and carries the app.kubernetes.io labels; the builders, the status and the
tests all take names from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .domain import Domain

# The field manager of every server-side apply the operator makes.
FIELD_MANAGER = "es4ps-operator"
PART_OF = "es4ps"
# Selects everything the operator manages (its watches use it server-side).
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
NAME_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGED_BY_SELECTOR = f"{MANAGED_BY_LABEL}={FIELD_MANAGER}"
# On the DC StatefulSets and Pods: which DC (0, 1, ...) they run.
DC_INDEX_LABEL = "es4ps.io/dc-index"
# On ES4PSBackups and their Jobs: the domain they belong to, and (Jobs) the backup.
BACKUP_DOMAIN_LABEL = "es4ps.io/domain"
BACKUP_LABEL = "es4ps.io/backup"
# The DC's health endpoint (replication, metrics), served by its entrypoint over HTTPS to the client
# certificate of this common name only (the operator and Prometheus hold it: monitoring_tls).
DC_HEALTH_PORT = 9931
MONITORING_CLIENT = "monitoring"

# Hash of the manifest the operator last applied to a child (see children.needs_apply).
DESIRED_HASH_ANNOTATION = "es4ps.io/desired-hash"
# On Pod templates: hash of the configuration they read, so a change restarts them.
CONFIG_HASH_ANNOTATION = "es4ps.io/config-hash"

# Components (the app.kubernetes.io/component label).
CERTIFICATES = "certificates"
BROKER = "broker"
DIRECTORY = "directory"
PORTAL = "portal"
NETWORK = "network"
SECRETS = "secrets"
BACKUP = "backup"
MONITORING = "monitoring"
FILES = "files"
# Jobs acting on the DCs (a DC leaving, a database check): never "directory", whose Pods the Services select.
MAINTENANCE = "maintenance"

# The broker's virtual host and the RabbitMQ users, which are the client certificates' common names.
BROKER_VHOST = "es4ps"
BROKER_PORT = 5671
PORTAL_BROKER_USER = "portal"
WORKER_BROKER_USER = "worker"
PORTAL_HTTP_PORT = 8000
# Prometheus metrics of the portal's web processes and of its consumer (outbox relay, results), and of
# each DC's worker; the ServiceMonitors/PodMonitors select them by these port names.
PORTAL_METRICS_PORT = 9933
PORTAL_METRICS_PORT_NAME = "metrics"
CONSUMER_METRICS_PORT = 9934
CONSUMER_METRICS_PORT_NAME = "consumer-metric"  # a port name has at most 15 characters
WORKER_METRICS_PORT = 9932  # on the DC Pod's loopback; the DC's health endpoint passes them on
WORKER_METRICS_PORT_NAME = "worker-metrics"  # the external worker's (no DC beside it): its own Pod address
FILES_METRICS_PORT = 9935  # the file server's (es4ps_samba.files.metrics), on its Pod address
FILES_METRICS_PORT_NAME = "metrics"


def labels(domain: Domain, component: str) -> dict[str, str]:
    """The labels every child of `domain` in `component` carries."""
    return {
        NAME_LABEL: f"es4ps-{component}",
        INSTANCE_LABEL: domain.name,
        COMPONENT_LABEL: component,
        PART_OF_LABEL: PART_OF,
        MANAGED_BY_LABEL: FIELD_MANAGER,
    }


def selector(domain: Domain, component: str) -> dict[str, str]:
    """The stable subset of labels a Service or StatefulSet selects Pods by (never changes after creation)."""
    return {INSTANCE_LABEL: domain.name, COMPONENT_LABEL: component}


def child_name(domain: Domain, *parts: str) -> str:
    return "-".join((domain.name, *parts))


def service_account(domain: Domain, component: str) -> str:
    """The ServiceAccount of a component whose Pods the domain gives one (spec.<component>.serviceAccount)."""
    return child_name(domain, component)


# --- names of the children, by component ---------------------------------------


def ca_issuer_bootstrap(domain: Domain) -> str:
    return child_name(domain, "selfsigned")


def ca_certificate(domain: Domain) -> str:
    return child_name(domain, "ca-tls")


def ca_issuer(domain: Domain) -> str:
    return child_name(domain, "ca")


def broker(domain: Domain) -> str:
    """The broker's StatefulSet, headless Service and ConfigMap."""
    return child_name(domain, "broker")


def broker_nodes(domain: Domain) -> str:
    """The headless Service of a clustered broker's nodes (their DNS names, also before they are ready)."""
    return child_name(domain, "broker-nodes")


def broker_tls(domain: Domain) -> str:
    return child_name(domain, "broker-tls")


def broker_host(domain: Domain, cluster_domain: str) -> str:
    """The broker's fully qualified Service name (also valid from DCs that resolve through Samba)."""
    return f"{broker(domain)}.{domain.namespace}.svc.{cluster_domain}"


def broker_url(domain: Domain, cluster_domain: str) -> str:
    return f"amqps://{broker_host(domain, cluster_domain)}:{BROKER_PORT}/{BROKER_VHOST}"


def dc(domain: Domain, index: int) -> str:
    """The StatefulSet of DC number `index` (each DC has its own identity, volume and certificates)."""
    return child_name(domain, f"dc{index}")


def dc_hostname(domain: Domain, index: int | str) -> str:
    """The DC's computer name in the domain (at most 15 characters); `index` "{index}": the names' template.

    A domain restored from a backup gets new DC names (dc0-1a2b): a restore must
    not reuse the name of a DC the backup knows; nor a domain that joins an
    existing one the name of one of its DCs (ES4PS-Containers' may be dc1).
    """
    renamed = domain.directory.recovery_backup or domain.directory.join_server
    return f"dc{index}-{domain.uid[:4]}" if renamed else f"dc{index}"


def dc_ldaps_tls(domain: Domain, index: int) -> str:
    return child_name(domain, f"dc{index}-ldaps-tls")


def monitoring_tls(domain: Domain) -> str:
    """The client certificate (CN MONITORING_CLIENT) the operator and Prometheus read the DCs' health with."""
    return child_name(domain, "monitoring-tls")


def worker_tls(domain: Domain, index: int) -> str:
    return child_name(domain, f"dc{index}-worker-tls")


def dc_external_service(domain: Domain, index: int) -> str:
    """The Service exposing one DC's ports in Service network mode."""
    return child_name(domain, f"dc{index}-external")


def directory_service(domain: Domain) -> str:
    """The Service in front of all DCs that the portal checks logins against (LDAPS)."""
    return child_name(domain, "directory")


def directory_host(domain: Domain, cluster_domain: str) -> str:
    return f"{directory_service(domain)}.{domain.namespace}.svc.{cluster_domain}"


def portal(domain: Domain) -> str:
    """The portal's StatefulSet, Service, Ingress and NetworkPolicy."""
    return child_name(domain, "portal")


def files(domain: Domain) -> str:
    """The file server: its StatefulSet, its Service (SMB for the domain's computers) and its computer name."""
    return child_name(domain, "files")


def files_machine_secret(domain: Domain) -> str:
    """The file server's computer-account password: its membership of the domain, kept beside its volume."""
    return child_name(domain, "files-machine")


def portal_broker_tls(domain: Domain) -> str:
    return child_name(domain, "portal-broker-tls")


def portal_https_tls(domain: Domain) -> str:
    return child_name(domain, "portal-https-tls")


def broker_network_policy(domain: Domain) -> str:
    return broker(domain)


def portal_network_policy(domain: Domain) -> str:
    return portal(domain)


def files_network_policy(domain: Domain) -> str:
    return files(domain)


def admin_password_secret(domain: Domain) -> str:
    return child_name(domain, "samba-admin")


def broker_cookie_secret(domain: Domain) -> str:
    """The Erlang cookie the nodes of a clustered broker share."""
    return child_name(domain, "broker-erlang-cookie")


def django_secret_key_secret(domain: Domain) -> str:
    return child_name(domain, "portal-secret-key")


def task_keys_secret(domain: Domain) -> str:
    return child_name(domain, "task-keys")


def backup_signing_secret(domain: Domain) -> str:
    """The Secret with the Ed25519 key pair the backups are signed with (never deleted with the domain)."""
    return child_name(domain, "backup-signing-key")


def backup_trusted_key_secret(domain: Domain) -> str:
    """The Secret whose `verify-key` a restore trusts: the one the recovery names, else this domain's own."""
    return domain.directory.recovery_trusted_key_secret or backup_signing_secret(domain)


def result_key_secret(domain: Domain, index: int) -> str:
    """The key DC `index`'s worker signs its result events with (only that DC's Pod mounts its private half)."""
    return child_name(domain, f"dc{index}-result-key")


def backup_key_secret(domain: Domain) -> str:
    """The Secret with the age key pair the backups are encrypted with (never deleted with the domain)."""
    backup = domain.directory.backup
    return (backup.encryption_secret if backup else None) or child_name(domain, "backup-key")


def backups_volume(domain: Domain) -> str:
    """The PersistentVolumeClaim backups go to with destination `volume` (kept when the domain is deleted)."""
    return child_name(domain, "backups")


def dc_volume(domain: Domain, index: int) -> str:
    """The claim the StatefulSet of DC `index` makes for its volume (StatefulSet naming)."""
    return f"data-{dc(domain, index)}-0"


def portal_volume(domain: Domain) -> str:
    return f"data-{portal(domain)}-0"


def dc_job(domain: Domain, index: int, step: str) -> str:
    """A Job acting on DC `index`: leave (hand over its roles and changes), remove (from the domain)."""
    return child_name(domain, f"dc{index}-{step}")


def restore_job(domain: Domain) -> str:
    return child_name(domain, "restore")


def external_worker(domain: Domain) -> str:
    """The worker Deployment of a domain in external mode, and its volume."""
    return child_name(domain, "worker")


def external_worker_tls(domain: Domain) -> str:
    """The external worker's broker client certificate (common name WORKER_BROKER_USER, as the DCs' workers')."""
    return child_name(domain, "worker-tls")


def external_worker_result_key(domain: Domain) -> str:
    """The key the external worker signs its result events with (only its Pod mounts the private half)."""
    return child_name(domain, "worker-result-key")


@dataclass(frozen=True)
class WorkerIdentity:
    """What one worker is known by: its name in result events (the portal verifies them with the public key
    of that name), its broker client certificate and its result key Secret."""

    name: str
    broker_tls: str
    result_key: str


def dc_worker(domain: Domain, index: int) -> WorkerIdentity:
    """The worker beside DC `index`: named after its DC."""
    return WorkerIdentity(dc(domain, index), worker_tls(domain, index), result_key_secret(domain, index))


def external_worker_identity(domain: Domain) -> WorkerIdentity:
    """The one worker of a domain in external mode: named after its Deployment."""
    return WorkerIdentity(external_worker(domain), external_worker_tls(domain), external_worker_result_key(domain))


def workers(domain: Domain, dc_indices: Iterable[int]) -> list[WorkerIdentity]:
    """The domain's workers: one beside each DC of `dc_indices`, or in external mode the one worker Deployment."""
    if domain.directory.external is not None:
        return [external_worker_identity(domain)]
    return [dc_worker(domain, index) for index in sorted(dc_indices)]


def join_check_job(domain: Domain) -> str:
    return child_name(domain, "join-check")


def worker_credentials_secret(domain: Domain) -> str:
    """The password of the workers' directory account (the DCs create the account with it)."""
    return child_name(domain, "worker-credentials")


def disruption_budget(domain: Domain, component: str) -> str:
    """The PodDisruptionBudget over a component's Pods."""
    return child_name(domain, component)


def monitor(domain: Domain, what: str) -> str:
    """A PodMonitor (what: portal, worker, dc, broker) or, for "alerts", the PrometheusRule."""
    return child_name(domain, what)
