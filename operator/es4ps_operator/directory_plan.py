"""What the domain's DCs should be now: which run, with which image, and which Jobs move them along.

A pure function of the domain, the operator's configuration and what is
observed (the children's summaries, and whether replication is healthy).
Two things take several reconciliations, one step each:

- **A DC leaving** (`directory.replicas` lowered), the highest first, one at a
  time: its `leave` Job hands its FSMO roles and last changes to dc0 while it
  still runs; then its StatefulSet goes; then its `remove` Job has the domain
  forget it (and marks its volume, under Retain); then both Jobs go. A DC
  that is already gone skips `leave`. Raising `replicas` again stops this.
- **Another Samba image** rolls over the DCs one at a time, the highest first
  (dc0, which holds the roles, last), each only while every DC is ready and
  replication is not failing, and after a `dbcheck` Job found dc0's database
  clean with the image they run now. A DC that is not there yet gets the new
  image at once. A DC waiting for its turn (`held`) keeps its StatefulSet as
  it is, not only its image: an older image given a newer template (a
  container or a setting it does not know) would crash-loop. While they roll
  (`rolling`), a new release of the portal waits too
  (es4ps_operator.reconcile): an older worker must never read a newer
  portal's tasks.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping

from . import naming
from .builders.common import Manifest
from .builders.directory import samba_image
from .builders.jobs import dbcheck_job, dc_leave_job
from .children import ChildSummary
from .config import OperatorConfig
from .domain import Domain

LEAVE, REMOVE = "leave", "remove"


@dataclasses.dataclass(frozen=True)
class DirectoryPlan:
    # DCs whose StatefulSet, Services and certificates are wanted (more than `replicas` while one leaves).
    dc_indexes: tuple[int, ...]
    # The image each of them runs.
    images: dict[int, str]
    # Jobs to create, and Jobs whose step is over (deleted).
    jobs: tuple[Manifest, ...] = ()
    finished_jobs: tuple[str, ...] = ()
    # Sentences for the status: a DC leaving, an image roll-out, a step that failed.
    leaving: str | None = None
    rollout: str | None = None
    stalled: str | None = None
    # A DC runs another image than the domain's: an image roll-out is under way (or stalled).
    rolling: bool = False
    # The DCs waiting for their turn in that roll-out: their StatefulSets are kept as they are.
    held: tuple[int, ...] = ()


def _index_of(domain: Domain, name: str) -> int | None:
    """The DC index a StatefulSet or DC Job of this domain names (<domain>-dc<i>[-step])."""
    prefix = f"{domain.name}-dc"
    if not name.startswith(prefix):
        return None
    digits = name[len(prefix) :].split("-", 1)[0]
    return int(digits) if digits.isdigit() else None


def plan_directory(
    domain: Domain,
    config: OperatorConfig,
    observed: Mapping[tuple[str, str], ChildSummary],
    replication_healthy: bool | None,
) -> DirectoryPlan:
    if domain.directory.external is not None:  # no DC of ours: nothing to plan
        return DirectoryPlan(dc_indexes=(), images={})
    replicas = domain.directory.replicas
    present = {
        index
        for (kind, name), child in observed.items()
        if kind == "StatefulSet" and not child.deleting and (index := _index_of(domain, name)) is not None
    }
    dc_jobs = {
        (index, step): name
        for kind, name in observed
        if kind == "Job"
        and (index := _index_of(domain, name)) is not None
        and (step := name.rsplit("-", 1)[-1]) in (LEAVE, REMOVE)
    }
    wanted = set(range(replicas))
    jobs: list[Manifest] = []
    finished = [name for (index, _step), name in dc_jobs.items() if index < replicas]  # scaled up again
    leaving_note = stalled = None

    leaving = sorted({index for index in present if index >= replicas} | {i for i, _ in dc_jobs if i >= replicas})
    if leaving:
        index = leaving[-1]
        wanted |= {i for i in leaving[:-1] if i in present}  # the others wait their turn
        leave = observed.get(("Job", naming.dc_job(domain, index, LEAVE)))
        remove = observed.get(("Job", naming.dc_job(domain, index, REMOVE)))
        dc_name = naming.dc_hostname(domain, index)
        if remove is not None:
            if remove.ready:
                finished += [name for (i, _step), name in dc_jobs.items() if i == index]
                leaving_note = f"{dc_name} has left the domain"
            elif remove.failed:
                stalled = f"removing {dc_name} from the domain failed: {remove.message}"
            else:
                leaving_note = f"{dc_name} is being removed from the domain"
        elif index in present:
            if leave is None:
                jobs.append(dc_leave_job(domain, config, index, LEAVE))
                wanted.add(index)
                leaving_note = f"{dc_name} hands its roles and changes over to dc0"
            elif leave.failed:
                wanted.add(index)
                stalled = f"{dc_name} could not hand its roles and changes over: {leave.message}"
            elif not leave.ready:
                wanted.add(index)
                leaving_note = f"{dc_name} hands its roles and changes over to dc0"
            else:
                leaving_note = f"{dc_name} is stopping"
        else:
            # Its StatefulSet is gone (handed over, or lost before): the domain forgets it.
            jobs.append(dc_leave_job(domain, config, index, REMOVE))
            leaving_note = f"{dc_name} is being removed from the domain"

    images, rollout, image_jobs, image_finished, image_stalled = _roll(
        domain, config, observed, sorted(wanted), present, replication_healthy, busy=bool(leaving)
    )
    return DirectoryPlan(
        dc_indexes=tuple(sorted(wanted)),
        images=images,
        jobs=tuple(jobs + image_jobs),
        finished_jobs=tuple(finished + image_finished),
        leaving=leaving_note,
        rollout=rollout,
        stalled=stalled or image_stalled,
        rolling=bool(rollout or image_stalled),
        held=tuple(index for index, image in sorted(images.items()) if image != samba_image(domain, config)),
    )


def dbcheck_job_name(domain: Domain, image: str) -> str:
    return naming.child_name(domain, "dbcheck-" + hashlib.sha256(image.encode()).hexdigest()[:6])


def _roll(
    domain: Domain,
    config: OperatorConfig,
    observed: Mapping[tuple[str, str], ChildSummary],
    wanted: list[int],
    present: set[int],
    replication_healthy: bool | None,
    busy: bool,
):
    """(images, rollout sentence, Jobs to create, Jobs finished, stalled sentence) of an image roll-out."""
    target = samba_image(domain, config)
    statefulsets = {index: observed[("StatefulSet", naming.dc(domain, index))] for index in present}
    current = {index: (sts.images or (target,))[0] for index, sts in statefulsets.items()}
    checks = [name for kind, name in observed if kind == "Job" and name.startswith(f"{domain.name}-dbcheck-")]
    behind = [index for index in wanted if index in current and current[index] != target]
    if not behind:
        return {index: target for index in wanted}, None, [], checks, None
    images = {index: current.get(index, target) for index in wanted}
    check_name = dbcheck_job_name(domain, target)
    check = observed.get(("Job", check_name))
    stale_checks = [name for name in checks if name != check_name]
    started = any(current.get(index) == target for index in wanted)
    if not started:
        if check is None:
            job = dbcheck_job(domain, config, current[min(current)], check_name)
            return images, f"checking dc0's database before the DCs get {target}", [job], stale_checks, None
        if check.failed:
            return images, None, [], stale_checks, f"dbcheck of dc0 before the roll-out failed: {check.message}"
        if not check.ready:
            return images, f"checking dc0's database before the DCs get {target}", [], stale_checks, None
    waiting = [naming.dc_hostname(domain, i) for i, sts in statefulsets.items() if i in wanted and not sts.ready]
    if busy or waiting or replication_healthy is False:
        why = "a DC is leaving" if busy else f"{', '.join(waiting)} not ready" if waiting else "replication is failing"
        return images, f"the roll-out to {target} waits: {why}", [], stale_checks, None
    index = max(behind)
    images[index] = target
    left = len(behind) - 1
    return (
        images,
        f"rolling the DCs to {target}: {naming.dc_hostname(domain, index)} now, {left} after it",
        [],
        stale_checks,
        None,
    )
