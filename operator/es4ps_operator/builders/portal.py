"""The registration portal of a domain: StatefulSet, Service and Ingress.

A Pod runs two containers from images/django: `portal` (`es4ps-portal serve`:
migrations, then gunicorn on 8000 behind the Ingress, metrics on port
`metrics`) and `consumer` (`es4ps-portal consume`: relays the outbox to the
broker and records the workers' result events, metrics on port
`consumer-metric`). A StatefulSet, not a Deployment, because the default
database is SQLite on the Pod's volume.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from es4ps_contract.passwords import RANGE_FILES_DIR, PasswordPolicy

from .. import naming
from ..config import OperatorConfig
from ..domain import Domain
from .common import (
    GROUP_READABLE,
    Manifest,
    broker_client_env,
    disruption_budget,
    env,
    env_from_secret,
    http_probe,
    memory_volume,
    metadata,
    mount,
    pod_template,
    restricted_security_context,
    secret_volume,
    service,
    statefulset,
    tls_volume,
)

DATA_DIR = "/var/lib/es4ps-portal"
SECRET_KEY_DIR = "/etc/es4ps/django"  # noqa: S105 (a directory, not a secret)
BROKER_TLS_DIR = "/etc/es4ps/broker-tls"
KEYS_DIR = "/etc/es4ps/keys"
RESULT_KEYS_DIR = "/etc/es4ps/result-keys"
# External mode: the CA of the organisation's directory (spec.directory.external.caSecretRef).
DIRECTORY_CA_DIR = "/etc/es4ps/directory-ca"
SMTP_DIR = "/etc/es4ps/smtp"
STAFF_DIR = "/etc/es4ps/staff"
# The portal's user in images/django; fsGroup lets it write its volume and read its secret files.
PORTAL_UID = 10001


def build_portal(domain: Domain, config: OperatorConfig, dc_indices: Sequence[int] = ()) -> list[Manifest]:
    """StatefulSet and Service of the portal, and its Ingress unless spec.portal.ingress.enabled is false.

    `dc_indices`: the DCs whose workers' result events the portal accepts (it mounts their keys' public
    halves); in external mode the one worker's.
    """
    # A drain takes one portal Pod at a time (with one replica, registrations pause while it moves).
    manifests = [
        _statefulset(domain, config, dc_indices),
        _service(domain),
        disruption_budget(domain, naming.PORTAL, maxUnavailable=1),
    ]
    if domain.portal.ingress_enabled:
        manifests.append(_ingress(domain))
    return manifests


def portal_environment(domain: Domain, config: OperatorConfig, dc_indices: Sequence[int]) -> list[dict[str, Any]]:
    """The variables of both portal containers (docs/interfaces.md, "Portal"); `dc_indices`: the domain's DCs."""
    portal = domain.portal
    variables = [
        env("ES4PS_PORTAL_HOST", portal.host),
        env("ES4PS_PORTAL_SCHEME", "https"),
        env("ES4PS_PORTAL_PORT", naming.PORTAL_HTTP_PORT),
        env("ES4PS_PORTAL_METRICS_PORT", naming.PORTAL_METRICS_PORT),
        env("ES4PS_CONSUMER_METRICS_PORT", naming.CONSUMER_METRICS_PORT),
        env("ES4PS_ORGANIZATION_NAME", domain.organization_name),
        env("ES4PS_REALM", domain.realm),
        env("ES4PS_ALLOWED_EMAIL_DOMAINS", ",".join(domain.allowed_email_domains)),
        env("DJANGO_SECRET_KEY_FILE", f"{SECRET_KEY_DIR}/secret-key"),
        env("ES4PS_DATA_DIR", DATA_DIR),
        *_directory_environment(domain, config, dc_indices),
        *broker_client_env(domain, config.cluster_domain, BROKER_TLS_DIR),
        env("ES4PS_SEALING_PUBLIC_KEY_FILE", f"{KEYS_DIR}/sealing-public.key"),
        env("ES4PS_SIGNING_PRIVATE_KEY_FILE", f"{KEYS_DIR}/signing-private.key"),
        env("ES4PS_RESULT_KEYS_DIR", RESULT_KEYS_DIR),
        *portal_spec_environment(domain),
    ]
    if portal.database_url:
        variables.append(env_from_secret("ES4PS_DATABASE_URL", portal.database_url.name, portal.database_url.key))
    smtp = portal.smtp
    # Without a mail server the portal sends no mail (never to its log) and the domain is not Ready (status).
    if smtp is not None:
        variables += [
            env("ES4PS_EMAIL_BACKEND", "smtp"),
            env("ES4PS_SMTP_HOST", smtp.host),
            env("ES4PS_SMTP_PORT", smtp.port),
            env("ES4PS_SMTP_SECURITY", smtp.security),
            env("ES4PS_MAIL_FROM", smtp.sender),
        ]
        if smtp.username:
            variables.append(env("ES4PS_SMTP_USERNAME", smtp.username))
        if smtp.password:
            variables.append(env("ES4PS_SMTP_PASSWORD_FILE", f"{SMTP_DIR}/password"))
    if portal.staff_user:
        variables += [
            env("ES4PS_SUPERUSER_USERNAME", portal.staff_user.username),
            env("ES4PS_SUPERUSER_EMAIL", portal.staff_user.email),
            env("ES4PS_SUPERUSER_PASSWORD_FILE", f"{STAFF_DIR}/password"),
        ]
    return variables


def portal_spec_environment(domain: Domain) -> list[dict[str, Any]]:
    """The portal's variables that carry the domain's spec: every value given, defaults included.

    The CRD is the one place a spec default is written (the API server fills it
    in); the portal has no default of its own for these and refuses to start
    without them, so a default changed in the CRD reaches the portal unchanged.
    """
    portal = domain.portal
    variables = [
        env("ES4PS_TOKEN_TTL_HOURS", portal.link_validity_hours),
        env("ES4PS_UNVERIFIED_RETENTION_HOURS", portal.unconfirmed_retention_hours),
        env("ES4PS_RATE_LIMITS", _compact_json(portal.rate_limits)),
        env("ES4PS_PENDING_REGISTRATION_LIMITS", _compact_json(portal.pending_registrations)),
        env("ES4PS_TRUSTED_PROXY_COUNT", portal.trusted_proxies),
        env("ES4PS_REGISTRATION_APPROVAL", portal.approval),
        env("ES4PS_AUDIT_RETENTION_DAYS", portal.audit_retention_days),
        # The rules the forms check and explain: the same JSON the first DC applies to the domain.
        env("ES4PS_PASSWORD_POLICY", domain.directory.password_policy),
        env("ES4PS_PASSWORD_EXPIRY_REMINDER_DAYS", ",".join(map(str, portal.password_expiry_reminder_days))),
        env("ES4PS_DEFAULT_LANGUAGE", portal.default_language),
        env("ES4PS_ADMIN_HOST", portal.admin_host or ""),
        env("ES4PS_ADMIN_SOURCE_RANGES", ",".join(portal.admin_source_ranges)),
    ]
    if domain.policies:
        variables.append(env("ES4PS_POLICIES", _compact_json([policy.as_spec() for policy in domain.policies])))
    if domain.directory.unix:
        variables.append(env("ES4PS_UNIX_ATTRIBUTES", _compact_json(domain.directory.unix.as_spec())))
    return variables


def _compact_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _directory_environment(domain: Domain, config: OperatorConfig, dc_indices: Sequence[int]) -> list[dict[str, Any]]:
    """Where sign-ins are checked: the domain's DCs, or in external mode the organisation's directory."""
    external = domain.directory.external
    if external is not None:
        return [env("ES4PS_LDAP_URL", external.url), env("ES4PS_LDAP_CA_FILE", f"{DIRECTORY_CA_DIR}/ca.crt")]
    # Each DC by its headless Service (in its certificate), dc0 (the PDC emulator) first: a password the DC
    # the Service picked calls wrong is checked on the others (it may not have replicated yet: docs/portal.md).
    dcs = [f"ldaps://{naming.dc(domain, i)}.{domain.namespace}.svc.{config.cluster_domain}:636" for i in dc_indices]
    return [
        env("ES4PS_LDAP_URL", f"ldaps://{naming.directory_host(domain, config.cluster_domain)}:636"),
        env("ES4PS_LDAP_DC_URLS", ",".join(dcs)),
        # The DCs' LDAPS certificates come from the domain's CA, the same CA as the broker's.
        env("ES4PS_LDAP_CA_FILE", f"{BROKER_TLS_DIR}/ca.crt"),
    ]


def _result_keys_volume(domain: Domain, dc_indices: Sequence[int]) -> dict[str, Any]:
    """Every worker's result key, the public half only, as `<worker name>.key` (the consumer verifies events
    with them)."""
    sources = [
        {"secret": {"name": worker.result_key, "items": [{"key": "public.key", "path": f"{worker.name}.key"}]}}
        for worker in naming.workers(domain, dc_indices)
    ]
    return {"name": "result-keys", "projected": {"defaultMode": GROUP_READABLE, "sources": sources}}


def _volumes(domain: Domain, dc_indices: Sequence[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The portal's secret volumes and their mounts."""
    volumes = [
        secret_volume("secret-key", naming.django_secret_key_secret(domain), {"secret-key": "secret-key"}),
        tls_volume("broker-tls", naming.portal_broker_tls(domain)),
        secret_volume(
            "portal-keys",
            naming.task_keys_secret(domain),
            {
                "sealing-public.key": "sealing-public.key",
                "signing-private.key": "signing-private.key",
            },
        ),
        _result_keys_volume(domain, dc_indices),
    ]
    mounts = [
        mount("secret-key", SECRET_KEY_DIR),
        mount("broker-tls", BROKER_TLS_DIR),
        mount("portal-keys", KEYS_DIR),
        mount("result-keys", RESULT_KEYS_DIR),
    ]
    external = domain.directory.external
    if external is not None:
        volumes.append(secret_volume("directory-ca", external.ca_secret, {external.ca_key: "ca.crt"}))
        mounts.append(mount("directory-ca", DIRECTORY_CA_DIR))
    smtp = domain.portal.smtp
    if smtp and smtp.password:
        volumes.append(secret_volume("smtp", smtp.password.name, {smtp.password.key: "password"}))
        mounts.append(mount("smtp", SMTP_DIR))
    staff = domain.portal.staff_user
    if staff:
        volumes.append(secret_volume("staff", staff.password.name, {staff.password.key: "password"}))
        mounts.append(mount("staff", STAFF_DIR))
    # The breach corpus's range files (passwordPolicy.breachedPasswords.rangeFilesClaim), read-only.
    claim = PasswordPolicy.from_json(domain.directory.password_policy).breached_passwords.range_files_claim
    if claim:
        volumes.append({"name": "breached-ranges", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
        mounts.append(mount("breached-ranges", RANGE_FILES_DIR))
    return volumes, mounts


def _statefulset(domain: Domain, config: OperatorConfig, dc_indices: Sequence[int]) -> Manifest:
    image = domain.portal.image or config.images.portal
    environment = portal_environment(domain, config, dc_indices)
    volumes, mounts = _volumes(domain, dc_indices)
    # A read-only root file system: the portal writes only to its volume and to /tmp (gunicorn's heartbeats).
    volumes.append(memory_volume("tmp"))
    mounts += [mount("data", DATA_DIR, read_only=False), mount("tmp", "/tmp", read_only=False)]
    portal_container = {
        "name": "portal",
        "image": image,
        "imagePullPolicy": config.images.pull_policy,
        "command": ["es4ps-portal", "serve"],
        "env": environment,
        "ports": [
            {"name": "http", "containerPort": naming.PORTAL_HTTP_PORT, "protocol": "TCP"},
            {"name": naming.PORTAL_METRICS_PORT_NAME, "containerPort": naming.PORTAL_METRICS_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": http_probe("/readyz", "http", period_s=10),
        "livenessProbe": http_probe("/healthz", "http", period_s=20),
        # Migrations run before gunicorn listens.
        "startupProbe": http_probe("/healthz", "http", period_s=5, failures=60, timeout_s=1),
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "768Mi"}},
        "securityContext": restricted_security_context(),
        "volumeMounts": mounts,
    }
    consumer_container = {
        "name": "consumer",
        "image": image,
        "imagePullPolicy": config.images.pull_policy,
        "command": ["es4ps-portal", "consume"],
        "env": environment,
        "ports": [
            {
                "name": naming.CONSUMER_METRICS_PORT_NAME,
                "containerPort": naming.CONSUMER_METRICS_PORT,
                "protocol": "TCP",
            }
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": restricted_security_context(),
        "volumeMounts": mounts,
    }
    pod_spec = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsUser": PORTAL_UID,
            "runAsGroup": PORTAL_UID,
            "fsGroup": PORTAL_UID,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [portal_container, consumer_container],
        "volumes": volumes,
    }
    selector = naming.selector(domain, naming.PORTAL)
    return statefulset(
        domain,
        naming.portal(domain),
        naming.PORTAL,
        selector,
        replicas=domain.portal.replicas,
        pod=pod_template(domain, naming.PORTAL, domain.portal.placement, pod_spec, main=("portal",)),
        storage=domain.portal.storage,
        # Pods are interchangeable (the database is shared when there are several): start them together.
        podManagementPolicy="Parallel",
    )


def _service(domain: Domain) -> Manifest:
    spec = {
        "selector": naming.selector(domain, naming.PORTAL),
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
    }
    return service(domain, naming.portal(domain), naming.PORTAL, spec)


def _ingress(domain: Domain) -> Manifest:
    portal = domain.portal
    meta = metadata(domain, naming.portal(domain), naming.PORTAL)
    if portal.ingress_annotations:
        meta["annotations"] = dict(portal.ingress_annotations)
    # The admin's own host, if it has one, is a rule of its own (the portal serves only the admin there).
    hosts = [portal.host, *([portal.admin_host] if portal.admin_host else [])]
    backend = {"service": {"name": naming.portal(domain), "port": {"name": "http"}}}
    spec: dict[str, Any] = {
        "tls": [{"hosts": hosts, "secretName": naming.portal_https_tls(domain)}],
        "rules": [
            {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
            for host in hosts
        ],
    }
    if portal.ingress_class:
        spec["ingressClassName"] = portal.ingress_class
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}
