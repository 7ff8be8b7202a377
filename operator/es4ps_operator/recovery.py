"""A domain created from a backup (`spec.directory.bootstrap.recovery`), pure decisions.

As CloudNativePG bootstraps a cluster from a backup: before any DC or portal
Pod exists, a restore Job fetches and decrypts the backup, restores dc0's
volume from it (a DC of a new name: the restore must not reuse one the backup
knows) and the portal's database; the volumes are the very claims the
StatefulSets make later, created beforehand. Once the Job succeeded the
domain records `status.directory.restored` and runs as any other; further
DCs join dc0.

Bad input changes nothing: a recovery naming a backup that does not exist,
or one not Completed, leaves the domain not Ready with DirectoryReady saying
so, and nothing is created.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from . import naming
from .backups.rules import COMPLETED, BackupSummary
from .builders.common import Manifest, volume_claim
from .builders.jobs import restore_job
from .children import ChildSummary
from .config import OperatorConfig
from .domain import Domain
from .status import Check


@dataclasses.dataclass(frozen=True)
class RecoveryPlan:
    # False: create nothing at all (the recovery cannot start).
    proceed: bool = True
    # False while the restore prepares the volumes: no DC or portal StatefulSet yet.
    workloads: bool = True
    jobs: tuple[Manifest, ...] = ()
    # Claims to create once (never applied over, never pruned): the StatefulSets adopt them.
    volumes: tuple[Manifest, ...] = ()
    # DirectoryReady while the recovery is not done.
    check: Check | None = None
    restored: bool = False
    # The restore Job, once its work is done.
    finished_jobs: tuple[str, ...] = ()


def plan_recovery(
    domain: Domain,
    config: OperatorConfig,
    previous_status: Mapping[str, Any],
    backups: Iterable[BackupSummary],
    observed: Mapping[tuple[str, str], ChildSummary],
    claims_being_deleted: Iterable[str] = (),
) -> RecoveryPlan:
    """`claims_being_deleted`: those of `recovery_claims(domain)` still going with a deleted domain of this name."""
    name = domain.directory.recovery_backup
    if name is None:
        return RecoveryPlan()
    # Restored before (or running already, if the status was lost): never restore over a running domain.
    finished = (naming.restore_job(domain),) if ("Job", naming.restore_job(domain)) in observed else ()
    if (previous_status.get("directory") or {}).get("restored") or ("StatefulSet", naming.dc(domain, 0)) in observed:
        return RecoveryPlan(restored=True, finished_jobs=finished)
    backup = next((b for b in backups if b.namespace == domain.namespace and b.name == name), None)
    field = "spec.directory.bootstrap.recovery.backup"
    if backup is None:
        return RecoveryPlan(
            proceed=False,
            check=Check(False, "RecoveryBackupNotFound", f"{field}: no ES4PSBackup {name} in this namespace"),
        )
    if backup.phase != COMPLETED or not backup.location:
        return RecoveryPlan(
            proceed=False,
            check=Check(False, "RecoveryBackupNotCompleted", f"{field}: the ES4PSBackup {name} is {backup.phase}"),
        )
    if domain.directory.backup is None:
        message = "spec.directory.backup must name the destination the backup is stored at (and its credentials)"
        return RecoveryPlan(proceed=False, check=Check(False, "RecoveryDestinationMissing", message))
    job = observed.get(("Job", naming.restore_job(domain)))
    if job is not None and job.ready:
        return RecoveryPlan(restored=True, finished_jobs=(naming.restore_job(domain),))
    leaving = sorted(claims_being_deleted)
    if leaving:
        # A Pod naming a claim that is being deleted keeps it from going: the restore would wait for ever.
        message = f"waiting for {', '.join(leaving)} of the deleted domain to be gone before restoring into new ones"
        return RecoveryPlan(workloads=False, check=Check(False, "Restoring", message))
    volumes = _restored_volumes(domain)
    status = {"location": backup.location, "sha256": backup.sha256, "encryptionKeySecret": backup.encryption_key_secret}
    if job is not None and job.failed:
        check = Check(False, "RestoreFailed", f"restoring from {name} failed: {job.message}")
        return RecoveryPlan(workloads=False, volumes=tuple(volumes), check=check)
    check = Check(False, "Restoring", f"restoring dc0 and the portal's database from the backup {name}")
    return RecoveryPlan(
        workloads=False, jobs=(restore_job(domain, config, status),), volumes=tuple(volumes), check=check
    )


def recovery_claims(domain: Domain) -> list[str]:
    """The claims a restore fills: dc0's volume, and the portal's when its database is SQLite."""
    if domain.directory.recovery_backup is None:
        return []
    return [volume["metadata"]["name"] for volume in _restored_volumes(domain)]


def _restored_volumes(domain: Domain) -> list[Manifest]:
    volumes = [volume_claim(domain, naming.dc_volume(domain, 0), domain.directory.storage, naming.DIRECTORY, 0)]
    if domain.portal.database_url is None:  # SQLite, on the portal's volume
        volumes.append(volume_claim(domain, naming.portal_volume(domain), domain.portal.storage, naming.PORTAL))
    return volumes
