"""The backups reconciler and the schedule against a recording stand-in for the API (the real flow: tests/e2e)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime

import pytest
from es4ps_operator.backups import rules
from es4ps_operator.backups.reconcile import reconcile_backup
from es4ps_operator.backups.rules import BackupSummary
from es4ps_operator.backups.schedule import reconcile_schedule
from es4ps_operator.kube import KubeError, StepEnd
from es4ps_testkit.domains import MINIMAL_SPEC, domain_body, make_domain

UTC = datetime.UTC
BACKUP_SPEC = {"destination": {"volume": {"size": "2Gi"}}, "schedule": "0 2 * * *", "keep": 2}
STORED = '{"location": "volume:acme-backups/acme/b1.tar.age", "sizeBytes": 9, "sha256": "ab"}'


class BackupApi:
    """The requests a backup makes, answered from what the test sets and remembered for its checks."""

    def __init__(self, domain=None, job=None, ends=(), fail_deleting=()):
        self.domain, self.job, self.ends = domain, job, list(ends)
        self.statuses, self.applied, self.deleted, self.created = [], [], [], []
        self.fail_deleting = set(fail_deleting)
        self.limit_ranges = []

    async def get_domain(self, namespace, name):
        return self.domain

    async def get_job(self, namespace, name):
        return self.job

    async def list_limit_ranges(self, namespace):
        return self.limit_ranges

    async def apply(self, manifest):
        self.applied.append(manifest)
        self.job = {"metadata": manifest["metadata"], "status": {}}

    async def patch_backup_status(self, namespace, name, status):
        self.statuses.append(status)

    async def step_ends(self, namespace, job):
        return self.ends

    async def delete(self, api_version, kind, name, namespace):
        self.deleted.append((kind, name))

    async def delete_backup(self, namespace, name):
        if name in self.fail_deleting:
            raise KubeError(f"deleting ES4PSBackup {name} failed: 403 Forbidden")
        self.deleted.append(("ES4PSBackup", name))

    async def create_once(self, manifest):
        if manifest["metadata"]["name"] in [m["metadata"]["name"] for m in self.created]:
            return False
        self.created.append(manifest)
        return True


def backup(phase=None, name="b1"):
    body = {
        "apiVersion": "es4ps.io/v1alpha1",
        "kind": "ES4PSBackup",
        "metadata": {"name": name, "namespace": "acme", "uid": "backup-uid"},
        "spec": {"domain": "acme"},
    }
    if phase:
        body["status"] = {"phase": phase}
    return body


def domain_with_backups():
    return domain_body(MINIMAL_SPEC | {"directory": {"backup": BACKUP_SPEC}})


def completed(name, at):
    return BackupSummary(name, "acme", "acme", rules.COMPLETED, at, at, f"volume:x/{name}", "ab", None, "")


def job(condition, message=""):
    return {"status": {"conditions": [{"type": condition, "status": "True", "message": message}]}}


def run(backup_body, api, config, backups=()):
    return asyncio.run(reconcile_backup(backup_body, api, config, backups))


def test_a_new_backup_gets_its_job_owned_by_it_and_runs(config):
    api = BackupApi(domain_with_backups())
    history = [completed("old1", "2026-11-01T02:00:00Z"), completed("old2", "2026-11-02T02:00:00Z")]
    result = run(backup(), api, config, history)
    [written] = api.applied
    assert written["kind"] == "Job" and written["metadata"]["ownerReferences"][0]["uid"] == "backup-uid"
    # keep 2: storing this one leaves the oldest out, so its Job deletes that archive.
    store = next(c for c in written["spec"]["template"]["spec"]["containers"] if c["name"] == "store")
    assert {"name": "ES4PS_BACKUP_DELETE", "value": "volume:x/old1"} in store["env"]
    assert [s["phase"] for s in api.statuses] == ["Pending", "Running"]
    assert not result.finished and result.events[0][1] == "BackupStarted"


def test_a_completed_job_records_where_the_archive_is_applies_retention_and_goes(config):
    history = [completed("old1", "2026-11-01T02:00:00Z"), completed("old2", "2026-11-02T02:00:00Z")]
    api = BackupApi(domain_with_backups(), job("Complete"), [StepEnd("store", 0, STORED)])
    result = run(backup("Running"), api, config, history)
    assert api.statuses[-1]["phase"] == "Completed" and api.statuses[-1]["location"].endswith("b1.tar.age")
    assert api.deleted == [("ES4PSBackup", "old1"), ("Job", "b1")]
    assert result.finished and [reason for _, reason, _ in result.events] == ["BackupCompleted", "RetentionDeleted"]


def test_retention_that_cannot_delete_says_so_and_the_backup_still_completes(config):
    history = [completed("old1", "2026-11-01T02:00:00Z"), completed("old2", "2026-11-02T02:00:00Z")]
    api = BackupApi(domain_with_backups(), job("Complete"), [StepEnd("store", 0, STORED)], fail_deleting={"old1"})
    result = run(backup("Running"), api, config, history)
    assert api.statuses[-1]["phase"] == "Completed" and result.finished
    assert ("Warning", "RetentionFailed") in [(kind, reason) for kind, reason, _ in result.events]


@pytest.mark.parametrize(
    ("domain", "job_state", "ends", "phase", "reason"),
    [
        (None, None, (), None, "spec.domain: no ES4PSDomain acme in this namespace"),
        (domain_body(MINIMAL_SPEC), None, (), None, "has no spec.directory.backup"),
        ("backups", None, (), "Running", "its Job was deleted before it finished"),
        ("backups", job("Complete"), [StepEnd("store", 0, "")], "Running", "without saying where the archive is"),
        ("backups", job("Failed", "BackoffLimitExceeded"), [StepEnd("store", 1, "no space\n")], "Running", "store"),
    ],
)
def test_what_stops_a_backup_is_its_failure_reason(config, domain, job_state, ends, phase, reason):
    api = BackupApi(domain_with_backups() if domain == "backups" else domain, job_state, ends)
    result = run(backup(phase), api, config)
    assert api.statuses[-1]["phase"] == "Failed" and reason in api.statuses[-1]["reason"]
    assert result.finished and result.events[-1][:2] == ("Warning", "BackupFailed")


def test_a_running_job_is_waited_for_and_a_finished_backup_only_loses_its_leftover_job(config):
    api = BackupApi(domain_with_backups(), {"status": {"active": 1}})
    assert not run(backup("Running"), api, config).finished and api.statuses == [] and api.deleted == []
    finished = BackupApi(domain_with_backups())
    assert run(backup("Completed"), finished, config).finished and finished.deleted == [("Job", "b1")]


def test_the_due_slot_is_created_once_by_its_name_and_nothing_while_paused():
    domain = make_domain(directory={"backup": BACKUP_SPEC})
    domain = dataclasses.replace(domain, created=datetime.datetime(2026, 11, 1, tzinfo=UTC))
    now = datetime.datetime(2026, 11, 27, 11, 30, tzinfo=UTC)
    api = BackupApi()
    assert asyncio.run(reconcile_schedule(domain, [], api, now)) == "acme-20261127-0200"
    [made] = api.created
    assert (made["kind"], made["spec"], made["metadata"]["namespace"]) == ("ES4PSBackup", {"domain": "acme"}, "acme")
    # The index already knows it, or the API server does: either way nothing new.
    known = [BackupSummary("acme-20261127-0200", "acme", "acme", "Pending", "", None, None, None, None, "")]
    assert asyncio.run(reconcile_schedule(domain, known, api, now)) is None
    assert asyncio.run(reconcile_schedule(domain, [], api, now)) is None and len(api.created) == 1
    paused = dataclasses.replace(domain, paused=True)
    assert asyncio.run(reconcile_schedule(paused, [], BackupApi(), now)) is None
