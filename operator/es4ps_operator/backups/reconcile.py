"""One look at one ES4PSBackup: its state in, API requests and a result out (CloudNativePG's backup controller).

    Completed or Failed   -> delete a Job left over, finished
    its domain or the domain's spec.directory.backup is missing -> Failed
    no Job yet            -> Pending: write the Job (deleting the archives that fall out of `keep` once it
                             stored its own), Running; Running with no Job: it was deleted -> Failed
    Job complete          -> Completed with where the archive is, retention deletes the objects beyond
                             `keep`, the Job goes (its Pod would keep the portal's claim from going)
    Job failed            -> Failed with the last line a step wrote
    else                  -> wait: look again later

Every step is idempotent, so the handler calls this again until it says
`finished` (and again after an operator restart).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from .. import naming
from ..builders.backups import backup_owner_reference
from ..builders.jobs import backup_job
from ..config import OperatorConfig
from ..domain import Domain
from ..kube import KubeApi, KubeError
from ..limits import refused_resources
from . import rules
from .rules import BackupSummary

NORMAL, WARNING = "Normal", "Warning"


@dataclasses.dataclass
class BackupResult:
    """What one look at a backup did: Kubernetes Events (type, reason, message) and whether it is over."""

    events: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    finished: bool = False


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _job_conditions(job: Mapping[str, Any]) -> dict[str, bool]:
    return {c.get("type"): c.get("status") == "True" for c in (job.get("status") or {}).get("conditions") or []}


async def reconcile_backup(
    backup: Mapping[str, Any], api: KubeApi, config: OperatorConfig, backups: Iterable[BackupSummary]
) -> BackupResult:
    """Move one backup a step on; `backups`: every ES4PSBackup the operator sees (retention counts them)."""
    namespace, name = backup["metadata"]["namespace"], backup["metadata"]["name"]
    status = backup.get("status") or {}
    result = BackupResult()

    async def fail(reason: str) -> BackupResult:
        await api.patch_backup_status(namespace, name, {"phase": rules.FAILED, "reason": reason, "completedAt": _now()})
        result.events.append((WARNING, "BackupFailed", reason))
        result.finished = True
        return result

    if status.get("phase") in (rules.COMPLETED, rules.FAILED):
        await api.delete("batch/v1", "Job", name, namespace)  # left over if the operator stopped in between
        result.finished = True
        return result
    domain_name = backup["spec"]["domain"]
    domain_body = await api.get_domain(namespace, domain_name)
    if domain_body is None:
        return await fail(f"spec.domain: no ES4PSDomain {domain_name} in this namespace")
    domain = Domain.from_body(domain_body)
    if domain.directory.backup is None:
        return await fail(f"the ES4PSDomain {domain_name} has no spec.directory.backup (where to store it)")
    backups = list(backups)
    job = await api.get_job(namespace, name)
    if job is None:
        if status.get("phase") == rules.RUNNING:
            return await fail("its Job was deleted before it finished")
        refused = await _start(backup, domain, api, config, backups, result)
        return await fail(refused) if refused else result
    conditions = _job_conditions(job)
    if conditions.get("Complete"):
        stored = rules.stored_result(await api.step_ends(namespace, name))
        if "location" not in stored:
            return await fail("the Job ended without saying where the archive is")
        await api.patch_backup_status(namespace, name, {"phase": rules.COMPLETED, "completedAt": _now(), **stored})
        result.events.append((NORMAL, "BackupCompleted", f"{stored['location']}, {stored.get('sizeBytes')} bytes"))
        await _apply_retention(domain, name, backups, api, result)
        await api.delete("batch/v1", "Job", name, namespace)
        result.finished = True
    elif conditions.get("Failed"):
        ends = await api.step_ends(namespace, name)
        failed = next((c for c in job["status"]["conditions"] if c.get("type") == "Failed"), {})
        await fail(rules.failure_reason(ends, failed.get("message") or "the Job failed"))
        await api.delete("batch/v1", "Job", name, namespace)
    return result


async def _start(
    backup: Mapping[str, Any],
    domain: Domain,
    api: KubeApi,
    config: OperatorConfig,
    backups: list[BackupSummary],
    result: BackupResult,
) -> str | None:
    """Write the backup's Job and say it runs; why not, when the namespace's LimitRanges would refuse its Pod."""
    namespace, name = domain.namespace, backup["metadata"]["name"]
    if not (backup.get("status") or {}).get("phase"):
        await api.patch_backup_status(namespace, name, {"phase": rules.PENDING})
    # The archives that fall out of `keep` once this one is stored: its Job deletes them after storing.
    outgoing = rules.beyond_keep(rules.of_domain(backups, domain), domain.directory.backup.keep, adding=1)
    locations = [b.location for b in outgoing if b.location]
    job = backup_job(domain, config, name, backup_owner_reference(backup), locations)
    refused = refused_resources([job], await api.list_limit_ranges(namespace))
    if refused:
        return refused
    await api.apply(job)
    started = {"phase": rules.RUNNING, "startedAt": _now(), "encryptionKeySecret": naming.backup_key_secret(domain)}
    await api.patch_backup_status(namespace, name, started)
    result.events.append((NORMAL, "BackupStarted", f"the backup of {domain.name} started"))
    return None


async def _apply_retention(
    domain: Domain, completed: str, backups: list[BackupSummary], api: KubeApi, result: BackupResult
) -> None:
    """Delete the objects of the completed backups beyond `keep` (their Job deleted the archives)."""
    keep = domain.directory.backup.keep
    siblings = [b for b in rules.of_domain(backups, domain) if b.name != completed]
    for outgoing in rules.beyond_keep(siblings, keep, adding=1):
        try:
            await api.delete_backup(domain.namespace, outgoing.name)
        except KubeError as error:
            result.events.append((WARNING, "RetentionFailed", f"could not delete the backup {outgoing.name}: {error}"))
            continue
        result.events.append((NORMAL, "RetentionDeleted", f"deleted the backup {outgoing.name} (keep {keep})"))
