"""The kopf handlers: thin glue between watch events and `reconcile`.

How a domain is kept converged:

- each ES4PSDomain gets a daemon (`run_domain`): a loop that reconciles the
  domain, then sleeps until something about it changes (or `resync_seconds`
  pass), and reconciles again;
- the operator watches every kind of child it writes (server-side label
  selector app.kubernetes.io/managed-by=es4ps-operator), keeps a summary of
  each in an in-memory index, and any event on a child or on the domain wakes
  that domain's loop, so status follows the children at once and a deleted
  or edited child is put back;
- on deletion, the children go with the domain (owner references) and the
  volumes stay unless deletionPolicy is Delete (`on_domain_deleted`);
- a timer per domain asks its DCs for their replication health and creates
  the backup of a schedule slot when it is due (`watch_domain`);
- each ES4PSBackup gets a daemon (`run_backup`) that runs its Job and writes
  what came of it into its status, then ends; ES4PSBackups are indexed, and
  a change of one wakes its domain (its LAST BACKUP, BackupsHealthy, a
  recovery waiting for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from . import backups as backup_rules
from . import naming
from .backups import BackupSummary, summarize_backup
from .builders.jobs import backup_job
from .children import WATCHED_KINDS, ChildSummary, summarize
from .cron import CronError
from .domain import BACKUP_KIND, BACKUP_PLURAL, GROUP, PLURAL, VERSION, Domain, SpecError
from .health import poll_replication
from .kube import KubeError
from .observability import (
    CHILDREN_WRITTEN,
    DOMAINS,
    LAST_BACKUP,
    RECONCILE_SECONDS,
    RECONCILES,
    SECRETS_GENERATED,
)
from .reconcile import reconcile

# Watch requests end after this long on the server side, and the client gives up a little later; without
# both, a watch can hang silently forever and the operator goes blind (kopf has no default).
WATCH_SERVER_TIMEOUT_S = 300
WATCH_CLIENT_TIMEOUT_S = 330
# After a wake-up, wait this long so a burst of child events becomes one reconciliation.
SETTLE_S = 0.2
# Retry delays after a failed reconciliation: doubling from the first to the last.
RETRY_FIRST_S, RETRY_MAX_S = 2.0, 300.0
FINALIZER = f"{GROUP}/operator"
INDEX_PREFIX = "children_"
BACKUPS_INDEX = "es4ps_backups"
# How often a domain's timer ticks: its backup schedule is looked at each time, its DCs asked for their
# replication health every minute while it is True and at each tick while not (a recovery shows early).
WATCH_INTERVAL_S = 15.0
REPLICATION_ASK_S = 60.0
# How often a running backup's Job is looked at.
BACKUP_POLL_S = 5.0


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT_S
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT_S
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    settings.persistence.finalizer = FINALIZER
    # kopf's bookkeeping lives in annotations under our group, not in the status the users read.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Events are posted explicitly for meaningful steps; log lines below WARNING do not become Events.
    settings.posting.level = logging.WARNING
    for kind in WATCHED_KINDS.values():
        settings.watching.label_selectors[kind.api_version, kind.plural] = naming.MANAGED_BY_SELECTOR
    if memo.config.namespaces:
        # Namespaced rights only: no watching of CRDs or namespaces across the cluster, the fixed
        # list of namespaces is served (discovery of the resources needs no rights).
        settings.scanning.disabled = True


def _domain_key(namespace: str | None, labels: Mapping[str, str]) -> tuple[str | None, str | None]:
    return namespace, labels.get(naming.INSTANCE_LABEL)


def _index_child(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {_domain_key(namespace, labels): summarize(body)}


def _wake_owner(namespace: str | None, labels: Mapping[str, str], memo: kopf.Memo, **_: Any) -> None:
    wakeup = memo.wakeups.get(_domain_key(namespace, labels))
    if wakeup is not None:
        wakeup.set()


# One index and one wake-up handler per watched kind (kopf names each index by its id).
for _kind in WATCHED_KINDS.values():
    _labels = {naming.MANAGED_BY_LABEL: naming.FIELD_MANAGER}
    kopf.index(_kind.api_version, _kind.plural, id=INDEX_PREFIX + _kind.plural, labels=_labels)(_index_child)
    kopf.on.event(_kind.api_version, _kind.plural, id=f"wake_on_{_kind.plural}", labels=_labels)(_wake_owner)


def observed_children(indices: Mapping[str, Any], namespace: str, name: str) -> list[ChildSummary]:
    """Every indexed child of one domain, from all the per-kind indices."""
    key = (namespace, name)
    return [
        child
        for index_id, index in indices.items()
        if index_id.startswith(INDEX_PREFIX)
        for child in index.get(key, ())
    ]


@kopf.on.event(GROUP, VERSION, PLURAL)
def wake_on_domain(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    _wake(memo, namespace, name)


def _wake(memo: kopf.Memo, namespace: str | None, name: str | None) -> None:
    wakeup = memo.wakeups.get((namespace, name))
    if wakeup is not None:
        wakeup.set()


@kopf.index(GROUP, VERSION, BACKUP_PLURAL, id=BACKUPS_INDEX)
def index_backup(namespace: str, body: kopf.Body, **_: Any) -> dict:
    return {namespace: summarize_backup(body)}


@kopf.on.event(GROUP, VERSION, BACKUP_PLURAL)
def wake_on_backup(namespace: str, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    _wake(memo, namespace, spec.get("domain"))


def all_backups(indices: Mapping[str, Any]) -> list[BackupSummary]:
    return [backup for summaries in indices.get(BACKUPS_INDEX, {}).values() for backup in summaries]


# Cancelled at once on deletion or shutdown (every step is idempotent), then given 5 s to finish.
@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5.0)
async def run_domain(
    body: kopf.Body, namespace: str, name: str, memo: kopf.Memo, logger: logging.Logger, **kwargs: Any
) -> None:
    """Reconcile one domain whenever it or one of its children changes, for as long as it exists."""
    wakeup = memo.wakeups.setdefault((namespace, name), asyncio.Event())
    retry_s = RETRY_FIRST_S
    DOMAINS.inc()
    try:
        while True:
            wakeup.clear()
            children = observed_children(kwargs, namespace, name)
            failed = await _reconcile_once(body, children, all_backups(kwargs), memo, logger)
            delay = retry_s if failed else memo.config.resync_seconds
            retry_s = min(retry_s * 2, RETRY_MAX_S) if failed else RETRY_FIRST_S
            try:
                await asyncio.wait_for(wakeup.wait(), timeout=delay)
                await asyncio.sleep(SETTLE_S)
            except TimeoutError:
                pass
    finally:
        DOMAINS.dec()
        if memo.wakeups.get((namespace, name)) is wakeup:
            del memo.wakeups[(namespace, name)]


async def _reconcile_once(
    body: kopf.Body,
    children: list[ChildSummary],
    backups: list[BackupSummary],
    memo: kopf.Memo,
    logger: logging.Logger,
) -> bool:
    """One reconciliation with its Events, logs and metrics; True when it failed or waits (retry soon)."""
    started = time.monotonic()
    replication = memo.replication.get((body["metadata"]["namespace"], body["metadata"]["name"]))
    try:
        result = await reconcile(body, children, memo.api, memo.config, backups, replication)
    except Exception as error:  # a bug or an unexpected API answer: report it, retry later
        RECONCILES.labels(result="error").inc()
        logger.exception("reconciliation failed")
        kopf.warn(body, reason="ReconcileError", message=f"{type(error).__name__}: {error}"[:1000])
        return True
    finally:
        RECONCILE_SECONDS.observe(time.monotonic() - started)
    RECONCILES.labels(result="error" if result.error else "success").inc()
    for action in ("created", "updated", "restored", "pruned"):
        CHILDREN_WRITTEN.labels(action=action).inc(len(getattr(result, action)))
    SECRETS_GENERATED.inc(len(result.generated_secrets))
    _record_last_backup(body, result.status)
    for event_type, reason, message in result.events:
        kopf.event(body, type=event_type, reason=reason, message=message)
        (logger.warning if event_type == "Warning" else logger.info)(f"{reason}: {message}")
    return result.error is not None or result.waiting


def _record_last_backup(body: kopf.Body, status: Mapping[str, Any]) -> None:
    """es4ps_operator_last_backup_timestamp_seconds of a domain with a backup schedule (else no series)."""
    metadata = body["metadata"]
    labels = {"es4ps_namespace": metadata["namespace"], "es4ps_domain": metadata["name"]}
    schedule = ((body.get("spec") or {}).get("directory") or {}).get("backup", {}).get("schedule")
    if not schedule:
        with contextlib.suppress(KeyError):
            LAST_BACKUP.remove(*labels.values())
        return
    since = status.get("lastBackup") or metadata.get("creationTimestamp")
    if since:
        LAST_BACKUP.labels(**labels).set(datetime.datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp())


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def on_domain_deleted(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    """Children go with the domain (owner references); under Delete, also what garbage collection misses."""
    domain = Domain.from_body(body)
    if domain.delete_data:
        await memo.api.delete_leftovers(domain)
        logger.info("deletionPolicy Delete: removed the domain's certificates and secrets; its volumes follow")
    else:
        logger.info("deletionPolicy Retain: the volumes and the secrets that unlock them are kept")


# --- a timer per domain: replication health, scheduled backups ------------------------------------


@kopf.timer(GROUP, VERSION, PLURAL, interval=WATCH_INTERVAL_S, initial_delay=10.0)
async def watch_domain(
    body: kopf.Body, namespace: str, name: str, memo: kopf.Memo, logger: logging.Logger, **kwargs: Any
) -> None:
    """Ask the DCs how replication goes, and create the backup of a due schedule slot."""
    try:
        domain = Domain.from_body(body)
    except SpecError:
        return
    key = (namespace, name)
    last = memo.replication.get(key)
    if last is None or last.ready is not True or time.monotonic() - memo.replication_asked[key] >= REPLICATION_ASK_S:
        memo.replication_asked[key] = time.monotonic()
        replication = await poll_replication(domain, memo.config)
        if last != replication:
            memo.replication[key] = replication
            _wake(memo, namespace, name)
    backup = domain.directory.backup
    if backup is None or not backup.schedule or domain.paused:
        return
    created = datetime.datetime.fromisoformat(body["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    try:
        slot = backup_rules.due_slot(backup.schedule, datetime.datetime.now(datetime.UTC), created)
    except CronError:
        return  # BackupsHealthy says why
    if slot is None:
        return
    backup_name = backup_rules.scheduled_backup_name(domain, slot)
    known = {b.name for b in all_backups(kwargs) if b.namespace == namespace}
    if backup_name not in known and await memo.api.create_backup(namespace, backup_name, domain):
        logger.info(f"the scheduled backup {backup_name} of {slot:%Y-%m-%d %H:%M} UTC is due: created")


# --- each ES4PSBackup: its Job, and what came of it --------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _backup_owner(body: kopf.Body) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": BACKUP_KIND,
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


@kopf.daemon(GROUP, VERSION, BACKUP_PLURAL, cancellation_timeout=5.0)
async def run_backup(
    body: kopf.Body, namespace: str, name: str, memo: kopf.Memo, logger: logging.Logger, **kwargs: Any
) -> None:
    """Run one backup to its end (Completed or Failed), then stop: a finished backup needs nothing more."""
    status = dict(body.get("status") or {})
    api = memo.api
    if status.get("phase") in (backup_rules.COMPLETED, backup_rules.FAILED):
        await api.delete("batch/v1", "Job", name, namespace)  # left over if the operator stopped in between
        return

    async def fail(reason: str) -> None:
        await api.patch_backup_status(
            namespace, name, {"phase": backup_rules.FAILED, "reason": reason, "completedAt": _now()}
        )
        kopf.warn(body, reason="BackupFailed", message=reason)
        logger.warning(f"backup {name} failed: {reason}")

    domain_name = body["spec"]["domain"]
    domain_body = await api.get_domain(namespace, domain_name)
    if domain_body is None:
        await fail(f"spec.domain: no ES4PSDomain {domain_name} in this namespace")
        return
    domain = Domain.from_body(domain_body)
    if domain.directory.backup is None:
        await fail(f"the ES4PSDomain {domain_name} has no spec.directory.backup (where to store it)")
        return
    if not status.get("phase"):
        await api.patch_backup_status(namespace, name, {"phase": backup_rules.PENDING})
    if await api.get_job(namespace, name) is None:
        siblings = backup_rules.of_domain(all_backups(kwargs), domain)
        # The archives that fall out of `keep` once this one is stored: its Job deletes them after storing.
        outgoing = backup_rules.beyond_keep(siblings, domain.directory.backup.keep, adding=1)
        job = backup_job(domain, memo.config, name, _backup_owner(body), [b.location for b in outgoing if b.location])
        await api.apply(job)
        await api.patch_backup_status(
            namespace,
            name,
            {
                "phase": backup_rules.RUNNING,
                "startedAt": _now(),
                "encryptionKeySecret": naming.backup_key_secret(domain),
            },
        )
        logger.info(f"backup {name} of {domain_name} started")
    while True:
        job = await api.get_job(namespace, name)
        conditions = {c.get("type"): c for c in ((job or {}).get("status") or {}).get("conditions") or []}
        if job is None:
            await fail("its Job was deleted before it finished")
            return
        if conditions.get("Complete", {}).get("status") == "True":
            result = backup_rules.stored_result(await api.step_ends(namespace, name))
            if "location" not in result:
                await fail("the Job ended without saying where the archive is")
                return
            await api.patch_backup_status(
                namespace, name, {"phase": backup_rules.COMPLETED, "completedAt": _now(), **result}
            )
            kopf.info(body, reason="BackupCompleted", message=f"{result['location']}, {result.get('sizeBytes')} bytes")
            await _apply_retention(domain, name, all_backups(kwargs), api, logger)
            # Its status says what the Job did; the Job's Pod would keep the portal's claim from going with the domain.
            await api.delete("batch/v1", "Job", name, namespace)
            return
        if conditions.get("Failed", {}).get("status") == "True":
            ends = await api.step_ends(namespace, name)
            await fail(backup_rules.failure_reason(ends, conditions["Failed"].get("message") or "the Job failed"))
            await api.delete("batch/v1", "Job", name, namespace)
            return
        await asyncio.sleep(BACKUP_POLL_S)


async def _apply_retention(domain: Domain, completed: str, backups: list[BackupSummary], api, logger) -> None:
    """Delete the objects of the completed backups beyond `keep` (their Job deleted the archives)."""
    siblings = [b for b in backup_rules.of_domain(backups, domain) if b.name != completed]
    for outgoing in backup_rules.beyond_keep(siblings, domain.directory.backup.keep, adding=1):
        try:
            await api.delete_backup(domain.namespace, outgoing.name)
        except KubeError as error:
            logger.warning(f"retention could not delete the backup {outgoing.name}: {error}")
            continue
        logger.info(f"retention: deleted the backup {outgoing.name} (keep {domain.directory.backup.keep})")
