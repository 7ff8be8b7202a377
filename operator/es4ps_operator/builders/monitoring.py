"""Monitoring of a domain for the Prometheus Operator: PodMonitors and a PrometheusRule (spec.monitoring).

    <domain>-portal   the portal Pods' `metrics` port (registrations, logins, resets, latency) and
                      `consumer-metric` port (the outbox relay, results, expiry)
    <domain>-worker   the DC Pods' `health` port, /worker-metrics (tasks by operation and outcome, durations)
    <domain>-dc       the DC Pods' `health` port, /metrics (replication health, managed accounts, RIDs)
                      (both over HTTPS with the client certificate of the Secret <domain>-monitoring-tls)
    <domain>-broker   the broker Pods' `prometheus` port (rabbitmq_prometheus, per queue)
    <domain>-files    (spec.fileServices) the file server's `metrics` port (sessions, the trust, the volume)
    <domain>-alerts   the alerts of the data path

Written only when the cluster serves the Prometheus Operator's CRDs; the
status says so otherwise (MonitoringReady). The alert expressions select the
domain by namespace and Pod name, which the Prometheus Operator's relabelling
puts on every series (`namespace`, `pod`).
"""

from __future__ import annotations

from typing import Any

from es4ps_contract.tasks import PROVISIONING_QUEUE

from .. import naming
from ..domain import Domain
from .common import Manifest, metadata

API_VERSION = "monitoring.coreos.com/v1"
# Port names of the metrics endpoints (the Pod builders declare them).
PORTAL_METRICS_PORT = naming.PORTAL_METRICS_PORT_NAME
CONSUMER_METRICS_PORT = naming.CONSUMER_METRICS_PORT_NAME
DC_HEALTH_PORT_NAME = "health"
BROKER_METRICS_PORT = "prometheus"
BROKER_METRICS_PORT_NUMBER = 15692

# How long a condition must hold before its alert fires, and the thresholds (docs/operations.md explains them).
QUEUE_BACKLOG_MESSAGES = 100
OUTBOX_STUCK_SECONDS = 300
CERTIFICATE_WARNING_DAYS = 14
# Unconfirmed registrations at this share of spec.portal.pendingRegistrations.perDomain.
PENDING_WARNING_SHARE = 0.8
# The domain's RIDs (Samba hands out at most 2^30 - 1) or a uid range with less than this share left.
RID_SPACE = 2**30 - 1
LOW_SHARE = 0.1


def _endpoint(domain: Domain, port: str, path: str = "/metrics") -> dict[str, Any]:
    return {"port": port, "path": path, "interval": domain.monitoring.interval}


def _dc_endpoint(domain: Domain, path: str) -> dict[str, Any]:
    """The DC's health endpoint: HTTPS with the DC's certificate, read with the monitoring client certificate."""
    secret = naming.monitoring_tls(domain)
    return {
        **_endpoint(domain, DC_HEALTH_PORT_NAME, path),
        "scheme": "https",
        "tlsConfig": {
            "ca": {"secret": {"name": secret, "key": "ca.crt"}},
            "cert": {"secret": {"name": secret, "key": "tls.crt"}},
            "keySecret": {"name": secret, "key": "tls.key"},
            # Every DC's certificate names the directory Service (Prometheus scrapes the Pods' addresses).
            "serverName": f"{naming.directory_service(domain)}.{domain.namespace}.svc",
        },
    }


def _pod_monitor(domain: Domain, what: str, component: str, *endpoints: dict[str, Any]) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "PodMonitor",
        "metadata": metadata(domain, naming.monitor(domain, what), component, labels=_labels(domain, component)),
        "spec": {
            "selector": {"matchLabels": naming.selector(domain, component)},
            "podMetricsEndpoints": list(endpoints),
            "namespaceSelector": {"matchNames": [domain.namespace]},
        },
    }


def _labels(domain: Domain, component: str) -> dict[str, str]:
    return {**domain.monitoring.labels, **naming.labels(domain, component)}


def alert_rules(domain: Domain) -> list[dict[str, Any]]:
    """The domain's alerts (a PrometheusRule group); each names the domain and says what to look at."""
    ns = domain.namespace
    pods = {
        "portal": f'namespace="{ns}",pod=~"{naming.portal(domain)}-[0-9]+"',
        "dc": f'namespace="{ns}",pod=~"{domain.name}-dc[0-9]+-0"',
        "broker": f'namespace="{ns}",pod=~"{naming.broker(domain)}-[0-9]+"',
        "files": f'namespace="{ns}",pod="{naming.files(domain)}-0"',
    }
    queue = f'{pods["broker"]},queue="{PROVISIONING_QUEUE}"'
    labels = {"severity": "warning", "es4ps_domain": domain.name}
    critical = {**labels, "severity": "critical"}

    def alert(name: str, expr: str, for_: str, rule_labels: dict[str, str], summary: str, description: str):
        return {
            "alert": name,
            "expr": expr,
            "for": for_,
            "labels": rule_labels,
            "annotations": {"summary": summary, "description": description},
        }

    return [
        alert(
            "ES4PSProvisioningQueueBacklog",
            f"max(rabbitmq_queue_messages_ready{{{queue}}}) > {QUEUE_BACKLOG_MESSAGES}",
            "10m",
            labels,
            f"Registrations of {ns}/{domain.name} wait in the provisioning queue",
            f"More than {QUEUE_BACKLOG_MESSAGES} tasks have waited for 10 minutes: the workers are slow or stuck "
            "(look at the DCs and their worker containers).",
        ),
        alert(
            "ES4PSOutboxStuck",
            f"max(es4ps_portal_outbox_oldest_task_age_seconds{{{pods['portal']}}}) > {OUTBOX_STUCK_SECONDS}",
            "5m",
            labels,
            f"Directory tasks of {ns}/{domain.name} wait in the portal's outbox",
            f"A task has waited more than {OUTBOX_STUCK_SECONDS} s to be published: the broker is away or refuses "
            "the portal (the consumer container's log says which). Registrations are accepted meanwhile.",
        ),
        alert(
            "ES4PSProvisioningQueueNoConsumer",
            f"max(rabbitmq_queue_consumers{{{queue}}}) == 0",
            "5m",
            critical,
            f"No worker of {ns}/{domain.name} consumes the provisioning queue",
            "No DC's worker is connected: registrations are accepted but no account is created.",
        ),
        alert(
            "ES4PSTasksFailing",
            f'sum(rate(es4ps_worker_tasks_total{{{pods["dc"]},outcome!="succeeded"}}[15m])) > 0',
            "15m",
            labels,
            f"Provisioning tasks of {ns}/{domain.name} fail",
            "Workers report failed or rejected tasks for 15 minutes: see the worker logs and the status pages.",
        ),
        alert(
            "ES4PSDomainControllerDown",
            f'up{{{pods["dc"]},job="{ns}/{naming.monitor(domain, "dc")}"}} == 0',
            "5m",
            critical,
            f"A domain controller of {ns}/{domain.name} does not answer",
            "The DC's health endpoint has not answered for 5 minutes ({{ $labels.pod }}).",
        ),
        alert(
            "ES4PSReplicationFailing",
            f"min(es4ps_dc_replication_healthy{{{pods['dc']}}}) by (pod) == 0",
            "15m",
            critical,
            f"Replication between the DCs of {ns}/{domain.name} fails",
            "A replication link of {{ $labels.pod }} fails (kubectl get es4psdomain shows ReplicationHealthy "
            "with the link).",
        ),
        alert(
            "ES4PSCertificateExpiring",
            f'(certmanager_certificate_expiration_timestamp_seconds{{namespace="{ns}",name=~"{domain.name}-.*"}}'
            f" - time()) < {CERTIFICATE_WARNING_DAYS} * 86400",
            "1h",
            labels,
            f"A certificate of {ns}/{domain.name} expires within {CERTIFICATE_WARNING_DAYS} days",
            "cert-manager renews 30 days ahead: {{ $labels.name }} was not renewed (kubectl describe certificate).",
        ),
        alert(
            "ES4PSBackupsStale",
            f'time() - es4ps_operator_last_backup_timestamp_seconds{{es4ps_namespace="{ns}",'
            f'es4ps_domain="{domain.name}"}} > 2 * 86400',
            "1h",
            labels,
            f"{ns}/{domain.name} has no completed backup for two days",
            "The newest completed ES4PSBackup is older than two days (kubectl get es4psbackups; BackupsHealthy).",
        ),
        alert(
            "ES4PSPendingRegistrationsNearCap",
            f"max(es4ps_portal_pending_registrations{{{pods['portal']}}}) > {PENDING_WARNING_SHARE} * "
            f'max(es4ps_portal_pending_registration_cap{{{pods["portal"]},scope="perDomain"}})',
            "15m",
            labels,
            f"Unconfirmed registrations of {ns}/{domain.name} near their cap",
            f"More than {PENDING_WARNING_SHARE:.0%} of spec.portal.pendingRegistrations.perDomain wait for their "
            "address's proof: new registrations will be refused (a mail problem, or someone registering in bulk).",
        ),
        alert(
            "ES4PSRIDPoolLow",
            f"min(es4ps_dc_rids_remaining{{{pods['dc']}}}) < {int(RID_SPACE * LOW_SHARE)}",
            "1h",
            critical,
            f"The domain {ns}/{domain.name} runs out of RIDs",
            f"Less than {LOW_SHARE:.0%} of the domain's RIDs are left: every account, group or computer takes one "
            "for good (docs/operations.md, 'RIDs and uids').",
        ),
        *(
            alert(
                "ES4PSUidRangeLow",
                f"{end} - {start} - max(es4ps_dc_rids_issued{{{pods['dc']}}}) < {int((end - start) * LOW_SHARE)}",
                "1h",
                {**labels, "uid_range": f"{start}-{end}"},
                f"The uid range {start}-{end} of {ns}/{domain.name} runs low",
                f"A new account's uidNumber is {start} + its RID: less than {LOW_SHARE:.0%} of the range is left "
                "(docs/operations.md, 'RIDs and uids').",
            )
            for start, end in _uid_ranges(domain)
        ),
        alert(
            "ES4PSPortalDown",
            f'up{{{pods["portal"]},endpoint="{PORTAL_METRICS_PORT}"}} == 0',
            "5m",
            critical,
            f"The portal of {ns}/{domain.name} does not answer",
            "{{ $labels.pod }} has not answered its metrics scrape for 5 minutes.",
        ),
        *(
            []
            if domain.file_services is None
            else [
                alert(
                    "ES4PSFileServerDown",
                    f'up{{{pods["files"]},job="{ns}/{naming.monitor(domain, "files")}"}} == 0',
                    "5m",
                    critical,
                    f"The file server of {ns}/{domain.name} does not answer",
                    "{{ $labels.pod }} has not answered its metrics scrape for 5 minutes.",
                ),
                alert(
                    "ES4PSFileServerTrustBroken",
                    f"max(es4ps_files_trust_ok{{{pods['files']}}}) == 0",
                    "10m",
                    critical,
                    f"The file server of {ns}/{domain.name} is no longer trusted by the domain",
                    "wbinfo -t fails: people cannot connect. Deleting the Pod joins the server again with its "
                    "Secret's password (docs/files.md).",
                ),
                alert(
                    "ES4PSFileServerHomesOverQuota",
                    f"max(es4ps_files_homes_over_quota{{{pods['files']}}}) > 0",
                    "1h",
                    labels,
                    f"Homes on the file server of {ns}/{domain.name} hold more than their quota",
                    "Homes hold more than spec.fileServices.homes.quota (es4ps_files_homes_over_quota): clients see "
                    "it as the home's size, but the volume does not enforce it (docs/files.md, 'Quota').",
                ),
                alert(
                    "ES4PSFileServerVolumeLow",
                    f"max(es4ps_files_volume_free_bytes{{{pods['files']}}} / "
                    f"es4ps_files_volume_size_bytes{{{pods['files']}}}) < {LOW_SHARE}",
                    "1h",
                    labels,
                    f"The file server's volume of {ns}/{domain.name} is nearly full",
                    f"Less than {LOW_SHARE:.0%} of the volume is free: grow spec.fileServices.storage.size (if the "
                    "storage class allows it) or ask people over their quota (es4ps_files_homes_over_quota).",
                ),
            ]
        ),
    ]


def _uid_ranges(domain: Domain) -> list[tuple[int, int]]:
    """The uid ranges accounts take their uidNumber from: spec.directory.unix's and the policies' own."""
    if domain.directory.unix is None:
        return []
    ranges = {domain.directory.unix.uid_range, *(p.uid_range for p in domain.policies if p.uid_range)}
    return sorted(ranges)


def build_monitoring(domain: Domain) -> list[Manifest]:
    """The PodMonitors and the PrometheusRule (nothing unless spec.monitoring.enabled)."""
    if not domain.monitoring.enabled:
        return []
    rule = {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": metadata(
            domain, naming.monitor(domain, "alerts"), naming.MONITORING, labels=_labels(domain, naming.MONITORING)
        ),
        "spec": {"groups": [{"name": f"es4ps-{domain.namespace}-{domain.name}", "rules": alert_rules(domain)}]},
    }
    return [
        _pod_monitor(
            domain,
            "portal",
            naming.PORTAL,
            _endpoint(domain, PORTAL_METRICS_PORT),
            _endpoint(domain, CONSUMER_METRICS_PORT),
        ),
        # Beside a DC the worker's metrics listen on the Pod's loopback and the DC's health endpoint passes them
        # on; the external worker serves them on its own Pod's port.
        _pod_monitor(
            domain,
            "worker",
            naming.DIRECTORY,
            _endpoint(domain, naming.WORKER_METRICS_PORT_NAME)
            if domain.directory.external is not None
            else _dc_endpoint(domain, "/worker-metrics"),
        ),
        _pod_monitor(domain, "dc", naming.DIRECTORY, _dc_endpoint(domain, "/metrics")),
        _pod_monitor(domain, "broker", naming.BROKER, _endpoint(domain, BROKER_METRICS_PORT)),
        *(
            [_pod_monitor(domain, "files", naming.FILES, _endpoint(domain, naming.FILES_METRICS_PORT_NAME))]
            if domain.file_services is not None
            else []
        ),
        rule,
    ]
