"""An ES4PSDomain object read into plain typed values.

The API server has already validated the object and filled in the defaults
written in the CRD (crds/es4ps.io_es4psdomains.yaml), so this module only
derives what the CRD cannot express (the NetBIOS name from the realm, the
organisation name) and gives the builders names instead of nested dicts.

The CRD is the one place a spec default is written: this module, the
builders and the processes they configure (portal, DCs) have none of their
own; the operator passes every value on. A new spec field therefore goes:

1. into the CRD's schema, with its `default:` if it has one (an object that
   holds defaulted fields gets `default: {}` so they apply when it is left out);
2. here, read with `spec["field"]` when defaulted (a missing one is a
   SpecError: an outdated CRD), `.get()` only when absent means something;
3. into the builder that hands it on (as an environment variable the
   process's `Variable` declares without a default);
4. into the tests: tests/operator/test_operator_validation.py for its rules,
   the builder's unit test for where it lands.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Mapping
from typing import Any

from cronsim import CronSim, CronSimError

from .external import External, read_external
from .fileservices import FileServices, read_file_services
from .placement import Placement, read_placement

GROUP = "es4ps.io"
VERSION = "v1alpha1"
KIND = "ES4PSDomain"
PLURAL = "es4psdomains"
API_VERSION = f"{GROUP}/{VERSION}"
BACKUP_KIND = "ES4PSBackup"
BACKUP_PLURAL = "es4psbackups"


class SpecError(ValueError):
    """The object lacks something the CRD should have guaranteed (e.g. an outdated CRD is installed)."""


@dataclasses.dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


@dataclasses.dataclass(frozen=True)
class Storage:
    size: str
    storage_class: str | None


@dataclasses.dataclass(frozen=True)
class IssuerRef:
    name: str
    kind: str
    group: str


@dataclasses.dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    security: str
    sender: str
    username: str | None
    password: SecretKeyRef | None


@dataclasses.dataclass(frozen=True)
class StaffUser:
    username: str
    email: str
    password: SecretKeyRef


@dataclasses.dataclass(frozen=True)
class Monitoring:
    """spec.monitoring: PodMonitors and a PrometheusRule for the Prometheus Operator."""

    enabled: bool
    labels: dict[str, str]
    interval: str
    # Who may scrape the metrics ports (NetworkPolicy): labels of Prometheus's namespace.
    namespace_labels: dict[str, str]


@dataclasses.dataclass(frozen=True)
class Portal:
    host: str
    replicas: int
    image: str | None
    storage: Storage
    database_url: SecretKeyRef | None
    ingress_enabled: bool
    ingress_class: str | None
    ingress_annotations: dict[str, str]
    # Who may reach the portal: labels of the ingress controller's namespace and Pods.
    ingress_namespace_labels: dict[str, str]
    ingress_pod_labels: dict[str, str]
    tls_issuer: IssuerRef | None
    admin_host: str | None  # spec.portal.admin.host (None: the admin on portal.host)
    admin_source_ranges: tuple[str, ...]  # spec.portal.admin.allowedSourceRanges (empty: every address)
    smtp: Smtp | None
    staff_user: StaffUser | None
    link_validity_hours: int
    unconfirmed_retention_hours: int  # 0: kept
    # spec.portal.rateLimits as the API server defaulted it (the portal reads the same shape).
    rate_limits: dict[str, Any]
    pending_registrations: dict[str, int]  # spec.portal.pendingRegistrations, the same way
    trusted_proxies: int
    placement: Placement
    approval: str  # Automatic | Manual
    audit_retention_days: int
    # spec.portal.defaultLanguage (en, pt-BR, es) and the days before a password expires its owner is reminded.
    default_language: str
    password_expiry_reminder_days: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class S3Destination:
    endpoint: str
    bucket: str
    prefix: str
    region: str
    credentials_secret: str
    access_key_id_key: str
    secret_access_key_key: str


@dataclasses.dataclass(frozen=True)
class Backup:
    """spec.directory.backup: when, how many, where, and with which key."""

    # Five cron fields in UTC, read here once; a schedule cronsim refuses is kept with why (BackupsHealthy).
    schedule: str | None
    schedule_error: str | None
    keep: int
    volume: Storage | None
    s3: S3Destination | None
    # A Secret the user names; None: the one the operator generates (naming.backup_key_secret).
    encryption_secret: str | None
    placement: Placement  # of its Jobs' Pods


@dataclasses.dataclass(frozen=True)
class Policy:
    """One entry of spec.policies: an e-mail domain's OU, groups, optional uid range and computers per person."""

    email_domain: str
    ou: str
    groups: tuple[str, ...]
    uid_range: tuple[int, int] | None
    computers_per_person: int  # computers.perPerson: 0, none

    def as_spec(self) -> dict[str, Any]:
        """The entry in the CRD's shape (what the portal reads from ES4PS_POLICIES)."""
        entry: dict[str, Any] = {"emailDomain": self.email_domain, "ou": self.ou, "groups": list(self.groups),
                                 "computers": {"perPerson": self.computers_per_person}}  # fmt: skip
        if self.uid_range:
            entry["uidRange"] = {"start": self.uid_range[0], "end": self.uid_range[1]}
        return entry


@dataclasses.dataclass(frozen=True)
class Unix:
    """spec.directory.unix when enabled."""

    login_shell: str
    home_directory_template: str
    uid_range: tuple[int, int]
    gid_number: int | None  # None: the portal derives it (uidRange.start + Domain Users' RID)

    def as_spec(self) -> dict[str, Any]:
        """In the CRD's shape (what the portal reads from ES4PS_UNIX_ATTRIBUTES)."""
        unix: dict[str, Any] = {
            "enabled": True,
            "loginShell": self.login_shell,
            "homeDirectoryTemplate": self.home_directory_template,
            "uidRange": {"start": self.uid_range[0], "end": self.uid_range[1]},
        }
        if self.gid_number is not None:
            unix["gidNumber"] = self.gid_number
        return unix


@dataclasses.dataclass(frozen=True)
class Directory:
    replicas: int
    image: str | None
    host_network: bool
    service_type: str
    service_annotations: dict[str, str]
    advertised_addresses: tuple[str, ...]
    node_cidrs: tuple[str, ...]
    dns_forwarder: str | None
    # spec.directory.passwordPolicy as the API server defaulted it, in JSON: what the DC and the portal read.
    password_policy: str
    storage: Storage
    backup: Backup | None
    # bootstrap.recovery: the backup, the Secret of its verify-key (None: naming's), whether unsigned is accepted.
    recovery_backup: str | None
    recovery_trusted_key_secret: str | None
    recovery_accept_unsigned: bool
    join_server: str | None  # spec.directory.bootstrap.join: an existing domain's DC its DCs join through,
    join_credentials: SecretKeyRef | None  # and that domain's Administrator password
    placement: Placement
    unix: Unix | None  # None: no Unix attributes
    external: External | None  # None: the domain's own DCs


@dataclasses.dataclass(frozen=True)
class Broker:
    image: str | None
    storage: Storage
    # 1, or an odd number of nodes clustered with quorum queues.
    replicas: int
    placement: Placement

    @property
    def clustered(self) -> bool:
        return self.replicas > 1


@dataclasses.dataclass(frozen=True)
class Domain:
    """One ES4PSDomain: its identity and its spec with every default resolved."""

    name: str
    namespace: str
    uid: str
    generation: int
    created: datetime.datetime  # metadata.creationTimestamp: no schedule slot before it is due
    realm: str  # upper case
    netbios_name: str  # upper case
    organization_name: str
    allowed_email_domains: tuple[str, ...]
    policies: tuple[Policy, ...]
    portal: Portal
    directory: Directory
    broker: Broker
    file_services: FileServices | None  # spec.fileServices (None: no file server)
    monitoring: Monitoring
    # spec.maintenance: the overrides of the maintenance Jobs' Pods (a DC leaving, the database check, a restore).
    maintenance: Placement
    delete_data: bool  # deletionPolicy: Delete
    paused: bool

    @property
    def dns_domain(self) -> str:
        """The realm as a DNS name (lower case), e.g. ad.acme.example."""
        return self.realm.lower()

    @property
    def portal_url(self) -> str:
        return f"https://{self.portal.host}/"

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Domain:
        """Read an ES4PSDomain as the API server returns it; raises SpecError for a missing field."""
        try:
            return _read(body)
        except (KeyError, TypeError) as exc:
            raise SpecError(f"the ES4PSDomain lacks a field its CRD defines ({exc}); is the CRD up to date?") from None


def _read(body: Mapping[str, Any]) -> Domain:
    metadata, spec = body["metadata"], body["spec"]
    realm = spec["realm"].upper()
    netbios_name = (spec.get("netbiosName") or realm.split(".")[0][:15]).upper()
    portal, directory, broker = spec["portal"], spec["directory"], spec["broker"]
    ingress, allow_from = portal["ingress"], portal["ingress"]["allowFrom"]
    issuer = portal["tls"].get("issuerRef")
    registration = portal["registration"]
    recovery, join = ((directory.get("bootstrap") or {}).get(key) or {} for key in ("recovery", "join"))
    return Domain(
        name=metadata["name"],
        namespace=metadata["namespace"],
        uid=metadata["uid"],
        generation=metadata.get("generation", 0),
        created=_timestamp(metadata.get("creationTimestamp")),
        realm=realm,
        netbios_name=netbios_name,
        organization_name=spec.get("organizationName") or netbios_name,
        allowed_email_domains=tuple(spec["allowedEmailDomains"]),
        policies=tuple(_policy(entry) for entry in spec.get("policies") or ()),
        portal=Portal(
            host=portal["host"],
            replicas=portal["replicas"],
            image=portal.get("image"),
            storage=_storage(portal["storage"]),
            database_url=_secret_key_ref(portal.get("databaseURLSecretRef")),
            ingress_enabled=ingress["enabled"],
            ingress_class=ingress.get("className"),
            ingress_annotations=dict(ingress.get("annotations") or {}),
            ingress_namespace_labels=dict(allow_from["namespaceLabels"]),
            ingress_pod_labels=dict(allow_from.get("podLabels") or {}),
            tls_issuer=IssuerRef(issuer["name"], issuer["kind"], issuer["group"]) if issuer else None,
            admin_host=portal["admin"].get("host"),
            admin_source_ranges=tuple(portal["admin"]["allowedSourceRanges"]),
            smtp=_smtp(portal.get("smtp")),
            staff_user=_staff_user(portal.get("staffUser")),
            link_validity_hours=registration["linkValidityHours"],
            unconfirmed_retention_hours=registration["unconfirmedRetentionHours"],
            rate_limits=dict(portal["rateLimits"]),
            pending_registrations=dict(portal["pendingRegistrations"]),
            trusted_proxies=ingress["trustedProxies"],
            placement=read_placement(portal),
            approval=registration["approval"],
            audit_retention_days=portal["auditRetentionDays"],
            default_language=portal["defaultLanguage"],
            password_expiry_reminder_days=tuple(sorted(portal["passwordExpiryReminderDays"], reverse=True)),
        ),
        directory=Directory(
            replicas=directory["replicas"],
            image=directory.get("image"),
            host_network=directory["networkMode"] == "HostNetwork",
            service_type=directory["serviceType"],
            service_annotations=dict(directory.get("serviceAnnotations") or {}),
            advertised_addresses=tuple(directory.get("advertisedAddresses") or ()),
            node_cidrs=tuple(directory.get("nodeCIDRs") or ()),
            dns_forwarder=directory.get("dnsForwarder"),
            password_policy=json.dumps(directory["passwordPolicy"], sort_keys=True, separators=(",", ":")),
            storage=_storage(directory["storage"]),
            backup=_backup(directory.get("backup")),
            recovery_backup=recovery.get("backup"),
            recovery_trusted_key_secret=recovery.get("trustedKeySecret"),
            recovery_accept_unsigned=bool(recovery.get("acceptUnsigned")),
            join_server=join.get("server"),
            join_credentials=_secret_key_ref(join.get("credentialsSecretRef")),
            placement=read_placement(directory),
            unix=_unix(directory["unix"]),
            external=read_external(directory.get("external")),
        ),
        broker=Broker(
            image=broker.get("image"),
            storage=_storage(broker["storage"]),
            replicas=broker["replicas"],
            placement=read_placement(broker),
        ),
        file_services=read_file_services(spec.get("fileServices")),
        monitoring=_monitoring(spec["monitoring"]),
        maintenance=read_placement(spec.get("maintenance")),
        delete_data=spec["deletionPolicy"] == "Delete",
        paused=bool(spec["paused"]),
    )


def _monitoring(monitoring: Mapping[str, Any]) -> Monitoring:
    return Monitoring(
        enabled=monitoring["enabled"],
        labels=dict(monitoring.get("labels") or {}),
        interval=monitoring["interval"],
        namespace_labels=dict(monitoring["allowFrom"]["namespaceLabels"]),
    )


def _policy(entry: Mapping[str, Any]) -> Policy:
    return Policy(
        email_domain=entry["emailDomain"],
        ou=entry.get("ou", ""),
        groups=tuple(entry.get("groups") or ()),
        uid_range=(entry["uidRange"]["start"], entry["uidRange"]["end"]) if entry.get("uidRange") else None,
        computers_per_person=entry["computers"]["perPerson"],
    )


def _unix(unix: Mapping[str, Any]) -> Unix | None:
    if not unix["enabled"]:
        return None
    return Unix(
        login_shell=unix["loginShell"],
        home_directory_template=unix["homeDirectoryTemplate"],
        uid_range=(unix["uidRange"]["start"], unix["uidRange"]["end"]),
        gid_number=unix.get("gidNumber"),
    )


def _storage(storage: Mapping[str, Any]) -> Storage:
    return Storage(size=storage["size"], storage_class=storage.get("storageClassName"))


def _timestamp(text: str | None) -> datetime.datetime:
    """An API timestamp (2026-12-06T20:00:00Z); none yet (an object not stored): now."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else datetime.datetime.now(datetime.UTC)


def _schedule_error(schedule: str | None) -> str | None:
    try:
        if schedule:
            CronSim(schedule, datetime.datetime.now(datetime.UTC))
    except CronSimError as error:
        return f"{schedule!r} is not a cron schedule: {error}"
    return None


def _backup(backup: Mapping[str, Any] | None) -> Backup | None:
    if not backup:
        return None
    destination = backup["destination"]
    volume, s3 = destination.get("volume"), destination.get("s3")
    credentials = s3["credentialsSecretRef"] if s3 else {}
    return Backup(
        schedule=backup.get("schedule"),
        schedule_error=_schedule_error(backup.get("schedule")),
        keep=backup["keep"],
        volume=_storage(volume) if volume is not None else None,
        s3=S3Destination(
            endpoint=s3["endpoint"].rstrip("/"),
            bucket=s3["bucket"],
            prefix=s3.get("prefix", ""),
            region=s3["region"],
            credentials_secret=credentials["name"],
            access_key_id_key=credentials["accessKeyIDKey"],
            secret_access_key_key=credentials["secretAccessKeyKey"],
        )
        if s3
        else None,
        encryption_secret=(backup.get("encryptionKeySecretRef") or {}).get("name"),
        placement=read_placement(backup),
    )


def _secret_key_ref(ref: Mapping[str, Any] | None) -> SecretKeyRef | None:
    return SecretKeyRef(ref["name"], ref["key"]) if ref else None


def _smtp(smtp: Mapping[str, Any] | None) -> Smtp | None:
    if not smtp:
        return None
    return Smtp(
        host=smtp["host"],
        port=smtp["port"],
        security=smtp["security"],
        sender=smtp["from"],
        username=smtp.get("username"),
        password=_secret_key_ref(smtp.get("passwordSecretRef")),
    )


def _staff_user(staff: Mapping[str, Any] | None) -> StaffUser | None:
    return StaffUser(staff["username"], staff["email"], SecretKeyRef(**staff["passwordSecretRef"])) if staff else None
