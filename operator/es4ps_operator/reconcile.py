"""One reconciliation of one domain: desired state in, API requests and a status out.

    read the domain -> plan the DCs (leaving, rolling) and a recovery from
    what is observed -> build the desired children -> create missing generated
    Secrets and volumes -> apply the children that need it -> prune the ones no
    longer wanted, delete Jobs whose step is over -> derive the status from
    the observed children -> write it if it changed

Every step is idempotent: a reconciliation killed half-way is finished by the
next one. What it did comes back as `ReconcileResult` so the caller can post
Kubernetes Events and count metrics; secret values never leave this module.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from . import naming
from .backups import rules as backup_rules
from .backups.rules import BackupSummary
from .builders import DesiredState, build_desired_state
from .builders.common import Manifest, desired_hash, owner_reference, volume_claim, with_content_hash
from .builders.external import worker_state_claim
from .builders.monitoring import API_VERSION as MONITORING_API_VERSION
from .builders.monitoring import build_monitoring
from .children import WATCHED_KINDS, ChildSummary, needs_apply, prunable, summarize
from .config import OperatorConfig
from .directory_plan import plan_directory
from .domain import Domain
from .external import url_problem, worker_refusal
from .health import Replication, current_check
from .joining import JoinPlan, check_result, needs_result, plan_join
from .kube import KubeApi, KubeError
from .limits import WORKLOADS, refused_resources
from .recovery import plan_recovery, recovery_claims
from .status import (
    MONITORING_NOT_CONFIGURED,
    MONITORING_READY,
    READY,
    Check,
    Findings,
    compute_status,
    name_list,
    unready_pods,
)

# ReplicationHealthy and BackupsHealthy in external mode: the organisation's directory is its own business.
NOT_APPLICABLE = Check(
    None, "NotApplicable", "external mode: the organisation runs, replicates and backs up the directory"
)
# DirectoryReady's note while the portal's new image waits (_held_portal).
PORTAL_HELD = "The portal's new image follows once every DC runs the new one."
# Kubernetes Event types.
NORMAL, WARNING = "Normal", "Warning"
# How many object names an Event message lists.
EVENT_NAMES = 6


@dataclasses.dataclass
class ReconcileResult:
    """What one reconciliation changed, for Events and metrics."""

    created: list[str] = dataclasses.field(default_factory=list)
    updated: list[str] = dataclasses.field(default_factory=list)
    restored: list[str] = dataclasses.field(default_factory=list)
    pruned: list[str] = dataclasses.field(default_factory=list)
    generated_secrets: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None
    # Waiting for something no watch reports (a claim of a deleted domain going): look again soon.
    waiting: bool = False
    status: dict[str, Any] = dataclasses.field(default_factory=dict)
    status_written: bool = False
    # With a backup schedule: since when the domain has gone without a completed backup (its newest one's
    # completion, else the domain's creation), for es4ps_operator_last_backup_timestamp_seconds; else None.
    last_backup: datetime.datetime | None = None
    events: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _names(names: list[str]) -> str:
    return name_list(names, EVENT_NAMES)


async def _unready_pods(
    domain: Domain, observed: Mapping[tuple[str, str], ChildSummary], api: KubeApi
) -> dict[str, tuple[str, ...]]:
    """The not-ready Pods of the domain's StatefulSets (a DC or broker member on a lost node, say), asked for only
    while one of them lacks ready Pods: an idle, healthy domain costs no request."""
    dcs = [naming.dc(domain, index) for index in range(domain.directory.replicas)]
    statefulsets = [
        observed.get(("StatefulSet", name)) for name in (naming.broker(domain), naming.portal(domain), *dcs)
    ]
    if not any(child is not None and child.ready_replicas < child.replicas for child in statefulsets):
        return {}
    try:
        return unready_pods(await api.domain_pods(domain))
    except KubeError:
        return {}  # the conditions still say how many Pods are ready


async def reconcile(
    body: Mapping[str, Any],
    observed_children: Iterable[ChildSummary],
    api: KubeApi,
    config: OperatorConfig,
    backups: Iterable[BackupSummary] = (),
    replication: Replication | None = None,
) -> ReconcileResult:
    """Bring one domain's children to their desired state and write its status.

    `backups`: every ES4PSBackup the operator sees (a recovery looks its backup
    up); `replication`: the domain's last replication check (es4ps_operator.health).
    """
    domain = Domain.from_body(body)
    children = [child for child in observed_children]
    observed = {child.key: child for child in children}
    backups = list(backups)
    previous_status = body.get("status") or {}
    result = ReconcileResult()
    applied_generation = None
    result.error = refused_images(domain, config)
    monitoring: Check | None = None
    leaving: list[str] = []
    if domain.directory.recovery_backup and not (previous_status.get("directory") or {}).get("restored"):
        try:
            leaving = await api.claims_being_deleted(domain.namespace, recovery_claims(domain))
        except KubeError as error:
            result.error, leaving = str(error), recovery_claims(domain)  # not knowing: wait
    recovery = plan_recovery(domain, config, previous_status, backups, observed, leaving)
    result.waiting = bool(leaving)
    join = await _plan_join(domain, config, previous_status, observed, api, result)
    dcs = plan_directory(domain, config, observed, (replication_now := current_check(domain, replication)).ready)
    jobs, workloads = [*dcs.jobs, *recovery.jobs, *join.jobs], recovery.workloads and join.workloads
    desired = build_desired_state(domain, config, dcs.images, jobs, workloads=workloads)
    portal_held = _held_portal(domain, desired, observed, dcs.rolling)
    held = portal_held | {("StatefulSet", naming.dc(domain, index)) for index in dcs.held}
    if not domain.paused and not result.error and recovery.proceed:
        try:
            await _converge(domain, desired, observed, api, result, held)
            for volume in [*recovery.volumes, *_backup_volumes(domain), *_external_volumes(domain)]:
                if await api.create_once(volume):
                    result.created.append(f"PersistentVolumeClaim/{volume['metadata']['name']}")
            for job in [*dcs.finished_jobs, *recovery.finished_jobs, *join.finished_jobs]:
                await api.delete("batch/v1", "Job", job, domain.namespace)
                result.pruned.append(f"Job/{job}")
            monitoring = await _converge_monitoring(domain, api, result, previous_status)
            applied_generation = domain.generation
        except KubeError as error:
            result.error = str(error)
    domain_backups = backup_rules.of_domain(backups, domain)
    last = backup_rules.last_completed(domain_backups)
    stalled = Check(False, "StepFailed", dcs.stalled) if dcs.stalled else None
    external = await _external_directory(domain, observed, api)
    result.waiting = result.waiting or (external is not None and not external.ready)
    findings = Findings(
        replication=replication_now if external is None else NOT_APPLICABLE,
        backups=backup_rules.backups_check(domain, domain_backups) if external is None else NOT_APPLICABLE,
        directory=recovery.check or join.check or stalled or external,
        joined=join.joined,
        directory_notes=tuple(note for note in (dcs.leaving, dcs.rollout, portal_held and PORTAL_HELD) if note),
        last_backup=last.completed_at if last else None,
        directory_state={
            **({"restored": True} if recovery.restored and domain.directory.recovery_backup else {}),
            **join.state,
        },
        unready_pods=await _unready_pods(domain, observed, api),
        monitoring=monitoring if monitoring is not None else _previous_check(previous_status, MONITORING_READY),
        held=held,
    )
    result.status = compute_status(
        domain, desired, children, previous_status, applied_generation, result.error, _now(), findings
    )
    if domain.directory.backup is not None and domain.directory.backup.schedule:
        since = result.status.get("lastBackup")
        result.last_backup = _timestamp(since) if since else domain.created
    if _differs(result.status, previous_status):
        await api.patch_domain_status(domain.namespace, domain.name, result.status)
        result.status_written = True
    result.events = _events(result, previous_status, domain)
    return result


def _held_portal(
    domain: Domain, desired: DesiredState, observed: Mapping[tuple[str, str], ChildSummary], dcs_rolling: bool
) -> frozenset[tuple[str, str]]:
    """The portal's StatefulSet, kept as it is while its new image waits for the DCs' roll-out, else nothing.

    The portal writes the tasks the DCs' workers read, and the workers' results are what it records: an older
    worker refuses a newer portal's task fields and does not sign its results the way the newer portal checks,
    while a newer worker reads an older portal's tasks (fields are only added) and the older portal ignores
    the signature. So a new release reaches the workers first: the portal's image changes only once every DC
    runs the domain's image and is ready again (docs/upgrading.md).
    """
    key = ("StatefulSet", naming.portal(domain))
    portal = observed.get(key)
    wanted = next((m for m in desired.manifests() if _key(m) == key), None)
    if portal is None or portal.deleting or wanted is None:
        return frozenset()
    images = tuple(c["image"] for c in wanted["spec"]["template"]["spec"]["containers"])
    dcs = [observed.get(("StatefulSet", naming.dc(domain, index))) for index in range(domain.directory.replicas)]
    settling = any(child is not None and not child.ready for child in dcs)
    return frozenset({key}) if portal.images != images and (dcs_rolling or settling) else frozenset()


async def _plan_join(
    domain: Domain,
    config: OperatorConfig,
    previous_status: Mapping[str, Any],
    observed: Mapping[tuple[str, str], ChildSummary],
    api: KubeApi,
    result: ReconcileResult,
) -> JoinPlan:
    """The join's plan, with what its check's Job wrote once it ended (read from its Pods only then)."""
    ends = []
    if needs_result(domain, previous_status, observed):
        try:
            ends = await api.step_ends(domain.namespace, naming.join_check_job(domain))
        except KubeError as error:
            result.error = str(error)
    return plan_join(domain, config, previous_status, observed, check_result(ends))


async def _converge(
    domain: Domain,
    desired: DesiredState,
    observed: Mapping[tuple[str, str], ChildSummary],
    api: KubeApi,
    result: ReconcileResult,
    held: frozenset[tuple[str, str]] = frozenset(),
) -> None:
    for secret in desired.generated_secrets:
        existing = observed.get(("Secret", secret.name))
        if existing is None or existing.deleting:
            if await api.create_once(secret.with_data(secret.generate())):
                result.generated_secrets.append(secret.name)
        elif secret.follows_deletion_policy and (domain.uid in existing.owner_uids) != domain.delete_data:
            # deletionPolicy changed: the Secret follows it (owned only under Delete).
            await api.set_owner_references(
                secret.name, domain.namespace, [owner_reference(domain)] if domain.delete_data else None
            )
    changed = [
        child
        for child in desired.manifests()
        if _key(child) not in held and needs_apply(child, observed.get(_key(child)))
    ]
    if any(child["kind"] in WORKLOADS for child in changed):
        # Read only when a workload is about to change: an idle domain still costs no request.
        refused = refused_resources(changed, await api.list_limit_ranges(domain.namespace))
        if refused:
            raise KubeError(refused)
    for child in changed:
        key = _key(child)
        before = observed.get(key)
        await api.apply(child)
        label = f"{key[0]}/{key[1]}"
        if before is None or before.deleting:
            result.created.append(label)
        elif before.desired_hash == desired_hash(child):
            result.restored.append(label)
        else:
            result.updated.append(label)
    desired_keys = {(m["kind"], m["metadata"]["name"]) for m in desired.manifests()}
    for child in prunable(observed.values(), desired_keys, domain.uid):
        await api.delete(WATCHED_KINDS[child.kind].api_version, child.kind, child.name, domain.namespace)
        result.pruned.append(f"{child.kind}/{child.name}")


async def _converge_monitoring(
    domain: Domain, api: KubeApi, result: ReconcileResult, previous_status: Mapping[str, Any]
) -> Check | None:
    """Apply the PodMonitors and the PrometheusRule where the cluster serves them; remove them when disabled.

    Returns MonitoringReady's check.

    Not watched like the other children (the kinds may not exist): listed at each
    reconciliation while monitoring is on, or was on, to converge and prune.
    """
    wanted = [with_content_hash(manifest) for manifest in build_monitoring(domain)]
    was_on = _previous_check(previous_status, MONITORING_READY) is not None
    not_configured = Check(None, MONITORING_NOT_CONFIGURED, "spec.monitoring.enabled is false")
    if not wanted and not was_on:
        return not_configured
    listed = await api.list_monitoring(domain)
    if listed is None:
        if not wanted:
            return not_configured
        return Check(
            False,
            "PrometheusOperatorMissing",
            "spec.monitoring.enabled, but the cluster does not serve the Prometheus Operator's PodMonitor and "
            "PrometheusRule (monitoring.coreos.com/v1): install it, or disable monitoring",
        )
    observed = {summary.key: summary for summary in map(summarize, listed)}
    for manifest in wanted:
        key = (manifest["kind"], manifest["metadata"]["name"])
        if needs_apply(manifest, observed.get(key)):
            await api.apply(manifest)
            (result.created if key not in observed else result.updated).append("/".join(key))
    wanted_keys = {(m["kind"], m["metadata"]["name"]) for m in wanted}
    for child in prunable(observed.values(), wanted_keys, domain.uid):
        await api.delete(MONITORING_API_VERSION, child.kind, child.name, domain.namespace)
        result.pruned.append(f"{child.kind}/{child.name}")
    if not wanted:
        return not_configured
    return Check(True, "Written", "PodMonitors and PrometheusRule " + _names([m["metadata"]["name"] for m in wanted]))


def _key(manifest: Manifest) -> tuple[str, str]:
    return manifest["kind"], manifest["metadata"]["name"]


def _previous_check(previous_status: Mapping[str, Any], kind: str) -> Check | None:
    """A condition of the last status, unless it said the feature is not configured."""
    for condition in previous_status.get("conditions") or []:
        if condition.get("type") == kind and condition.get("reason") != MONITORING_NOT_CONFIGURED:
            ready = {"True": True, "False": False}.get(condition.get("status"))
            return Check(ready, condition.get("reason", ""), condition.get("message", ""))
    return None


def _backup_volumes(domain: Domain) -> list[Manifest]:
    """The volume backups go to (destination `volume`): made once, never owned, never deleted by the operator."""
    backup = domain.directory.backup
    if backup is None or backup.volume is None:
        return []
    return [volume_claim(domain, naming.backups_volume(domain), backup.volume, naming.BACKUP)]


def _external_volumes(domain: Domain) -> list[Manifest]:
    """External mode: the worker's volume (its record of applied tasks), made once like the backups' one."""
    return [] if domain.directory.external is None else [worker_state_claim(domain)]


async def _external_directory(
    domain: Domain, observed: Mapping[tuple[str, str], ChildSummary], api: KubeApi
) -> Check | None:
    """DirectoryReady in external mode (None otherwise): a URL the worker may not use, the worker's refusal to
    run (credentials, rights: its termination message), or its Deployment's readiness."""
    external = domain.directory.external
    if external is None:
        return None
    problem = url_problem(external.url)
    if problem:
        return Check(False, "InvalidURL", f"{problem}; no worker runs")
    worker = observed.get(("Deployment", naming.external_worker(domain)))
    if worker is not None and worker.ready and not worker.deleting:
        return Check(True, "Running", f"the worker provisions into {external.ou} of {external.url}")
    try:
        ends = await api.pod_ends(domain.namespace, naming.selector(domain, naming.DIRECTORY))
    except KubeError as error:
        return Check(False, "Starting", f"the worker is not ready; its Pods cannot be read: {error}")
    refusal = worker_refusal(end.message for end in ends if end.container == "worker")
    if refusal:
        return Check(False, *refusal)
    reason = "Starting" if worker is not None else "Creating"
    return Check(False, reason, f"the worker is not ready yet (it waits for its Pod, or for {external.url})")


def refused_images(domain: Domain, config: OperatorConfig) -> str | None:
    """Why the domain's own images cannot be used, or None: the operator's configuration allows registries."""
    overrides = {
        "spec.directory.image": domain.directory.image,
        "spec.portal.image": domain.portal.image,
        "spec.broker.image": domain.broker.image,
    }
    refused = [field for field, image in overrides.items() if image and not config.images.override_allowed(image)]
    if not refused:
        return None
    allowed = ", ".join(config.images.allowed_registries) or "none"
    return (
        f"{', '.join(refused)}: images from that registry are not allowed by the operator (allowed registries: "
        f"{allowed}; see the chart's operator.images.allowedRegistries); nothing was applied"
    )


def _differs(status: Mapping[str, Any], previous: Mapping[str, Any]) -> bool:
    return any(previous.get(key) != value for key, value in status.items())


def _ready(status: Mapping[str, Any]) -> str | None:
    return next((c["status"] for c in status.get("conditions") or [] if c.get("type") == READY), None)


def _events(result: ReconcileResult, previous_status: Mapping[str, Any], domain: Domain) -> list[tuple[str, str, str]]:
    """Kubernetes Events (type, reason, message) for what changed; names only, never values."""
    events = []
    if result.generated_secrets:
        events.append((NORMAL, "SecretsGenerated", f"generated {_names(result.generated_secrets)}"))
    if result.created:
        events.append((NORMAL, "Created", f"created {_names(result.created)}"))
    if result.updated:
        events.append((NORMAL, "Updated", f"applied the changed spec to {_names(result.updated)}"))
    if result.restored:
        events.append((WARNING, "Restored", f"set back what others changed in {_names(result.restored)}"))
    if result.pruned:
        events.append((NORMAL, "Pruned", f"deleted {_names(result.pruned)}, no longer wanted"))
    if result.error:
        events.append((WARNING, "ApplyFailed", result.error))
    restore_job = naming.restore_job(domain)
    if domain.directory.recovery_accept_unsigned and any(name.endswith(f"/{restore_job}") for name in result.created):
        message = f"{restore_job} accepts an unsigned archive: spec.directory.bootstrap.recovery.acceptUnsigned is true"
        events.append((WARNING, "UnsignedBackupAccepted", message))
    ready_before, ready_now = _ready(previous_status), _ready(result.status)
    if ready_now != ready_before and not result.error:
        if ready_now == "True":
            events.append((NORMAL, "Ready", f"the domain {domain.realm} is ready at {domain.portal_url}"))
        elif ready_before == "True":
            events.append((WARNING, "NotReady", _condition_message(result.status)))
    paused_before = previous_status.get("phase") == "Paused"
    if domain.paused and not paused_before:
        events.append((NORMAL, "Paused", "spec.paused is true: the operator changes nothing until it is false"))
    return events


def _condition_message(status: Mapping[str, Any]) -> str:
    return next((c["message"] for c in status.get("conditions") or [] if c.get("type") == READY), "")
