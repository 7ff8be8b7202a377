"""Directory day 2, pure decisions: image roll-outs, recoveries, backup schedules, retention, backup Jobs."""

from __future__ import annotations

import dataclasses
import datetime

import pyrage
import pytest
from es4ps_operator.backups.rules import (
    COMPLETED,
    FAILED,
    BackupSummary,
    backups_check,
    beyond_keep,
    due_slot,
    failure_reason,
    parse_result,
    scheduled_backup_name,
    stored_result,
)
from es4ps_operator.builders import build_desired_state
from es4ps_operator.builders.jobs import backup_job
from es4ps_operator.builders.secrets import generate_backup_key
from es4ps_operator.children import summarize
from es4ps_operator.directory_plan import dbcheck_job_name, plan_directory
from es4ps_operator.kube import StepEnd
from es4ps_operator.recovery import plan_recovery, recovery_claims
from es4ps_testkit.domains import make_domain

UTC = datetime.UTC
VOLUME_BACKUP = {"destination": {"volume": {"size": "2Gi"}}, "schedule": "0 2 * * *", "keep": 2}


def statefulset(name, image, ready=True):
    return summarize(
        {
            "kind": "StatefulSet",
            "metadata": {"name": name, "generation": 1},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "dc", "image": image}]}}},
            "status": {"observedGeneration": 1, "readyReplicas": int(ready), "updatedReplicas": 1},
        }
    )


def job(name, outcome=None):
    conditions = [{"type": outcome, "status": "True", "message": "why"}] if outcome else []
    return summarize({"kind": "Job", "metadata": {"name": name}, "status": {"conditions": conditions}})


def observed(*children):
    return {child.key: child for child in children}


# --- image roll-outs ----------------------------------------------------------------------------


def three_dcs(config, images, ready=(True, True, True), jobs=()):
    domain = make_domain(directory={"replicas": 3})
    dcs = [statefulset(f"acme-dc{i}", image, ready[i]) for i, image in enumerate(images)]
    return domain, observed(*dcs, *jobs)


def test_another_image_waits_for_a_clean_dbcheck_of_dc0_with_the_image_running_now(config):
    old = "es4ps/samba:old"
    domain, seen = three_dcs(config, [old] * 3)
    plan = plan_directory(domain, config, seen, True)
    assert plan.images == {0: old, 1: old, 2: old}  # nothing moves yet
    [check] = plan.jobs
    assert check["metadata"]["name"] == dbcheck_job_name(domain, config.images.samba)
    assert check["spec"]["template"]["spec"]["containers"][0]["image"] == old

    failed = job(dbcheck_job_name(domain, config.images.samba), "Failed")
    _, seen_failed = three_dcs(config, [old] * 3, jobs=[failed])
    assert plan_directory(domain, config, seen_failed, True).stalled.startswith("dbcheck of dc0")


def test_the_dcs_roll_one_at_a_time_the_highest_first_while_all_are_ready_and_replicating(config):
    old, new = "es4ps/samba:old", config.images.samba
    check = job(dbcheck_job_name(make_domain(directory={"replicas": 3}), new), "Complete")
    domain, seen = three_dcs(config, [old] * 3, jobs=[check])
    assert plan_directory(domain, config, seen, True).images == {0: old, 1: old, 2: new}

    _, rolling = three_dcs(config, [old, old, new], ready=(True, True, False), jobs=[check])
    waiting = plan_directory(domain, config, rolling, True)
    assert waiting.images == {0: old, 1: old, 2: new} and "dc2 not ready" in waiting.rollout

    _, next_one = three_dcs(config, [old, old, new], jobs=[check])
    assert plan_directory(domain, config, next_one, True).images == {0: old, 1: new, 2: new}
    assert plan_directory(domain, config, next_one, False).images == {0: old, 1: old, 2: new}  # replication fails

    _, done = three_dcs(config, [new] * 3, jobs=[check])
    finished = plan_directory(domain, config, done, True)
    assert finished.rollout is None and finished.finished_jobs == (check.name,)


# --- recovery ---------------------------------------------------------------------------------------


def backup(name="acme-20261127-0200", phase=COMPLETED, completed_at="2026-11-27T02:01:00Z", domain="acme"):
    return BackupSummary(
        name=name,
        namespace="acme",
        domain=domain,
        phase=phase,
        created="2026-11-27T02:00:00Z",
        completed_at=completed_at if phase in (COMPLETED, FAILED) else None,
        location=f"volume:acme-backups/{name}.tar.age" if phase == COMPLETED else None,
        sha256="ab" * 32,
        encryption_key_secret="acme-backup-key",  # noqa: S106 (a Secret's name)
        reason="",
    )


def recovering(name="acme-20261127-0200"):
    return make_domain(directory={"bootstrap": {"recovery": {"backup": name}}, "backup": VOLUME_BACKUP})


@pytest.mark.parametrize(
    ("backups", "reason"),
    [([], "RecoveryBackupNotFound"), ([backup(phase="Running")], "RecoveryBackupNotCompleted")],
)
def test_a_recovery_from_a_missing_or_unfinished_backup_creates_nothing(config, backups, reason):
    plan = plan_recovery(recovering(), config, {}, backups, {})
    assert (
        not plan.proceed and plan.check.reason == reason and "spec.directory.bootstrap.recovery" in plan.check.message
    )


def test_a_recovery_restores_dc0_and_the_portal_before_any_pod_runs(config):
    domain = recovering()
    plan = plan_recovery(domain, config, {}, [backup()], {})
    assert plan.proceed and not plan.workloads and plan.check.reason == "Restoring"
    assert [v["metadata"]["name"] for v in plan.volumes] == ["data-acme-dc0-0", "data-acme-portal-0"]
    [restore] = plan.jobs
    pod = restore["spec"]["template"]["spec"]
    # The portal's SQLite volume is made the portal user's before its step writes it (no fsGroup here).
    assert [c["name"] for c in pod["initContainers"]] == ["fetch", "directory", "portal-volume"]
    fetch_env = {e["name"]: e.get("value") for e in pod["initContainers"][0]["env"]}
    assert fetch_env["ES4PS_BACKUP_LOCATION"] == "volume:acme-backups/acme-20261127-0200.tar.age"
    # The restored DC gets a name the backup does not know.
    directory_env = {e["name"]: e.get("value") for e in pod["initContainers"][1]["env"]}
    assert directory_env["ES4PS_DC_HOSTNAME"] == f"dc0-{domain.uid[:4]}"
    desired = build_desired_state(domain, config, jobs=plan.jobs, workloads=plan.workloads)
    assert not [m for m in desired.manifests() if m["kind"] == "StatefulSet" and m["metadata"]["name"] != "acme-broker"]

    done = plan_recovery(domain, config, {}, [backup()], observed(job("acme-restore", "Complete")))
    assert done.restored and done.workloads and done.finished_jobs == ("acme-restore",)
    # Once restored, never again (also when the status was lost but the DC runs).
    assert plan_recovery(domain, config, {"directory": {"restored": True}}, [], {}).restored
    assert plan_recovery(domain, config, {}, [], observed(statefulset("acme-dc0", "x"))).restored


def test_a_new_domain_restores_another_domains_backup_from_that_domains_volume(config):
    # A backup on a volume is read from the claim its location names: a domain of another name in the same
    # namespace restores it (it looked on its own backups volume, and found nothing there).
    other = dataclasses.replace(backup(), location="volume:campus-backups/campus/campus-1.tar.age")
    [restore] = plan_recovery(recovering(), config, {}, [other], {}).jobs
    pod = restore["spec"]["template"]["spec"]
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    }
    env = {e["name"]: e.get("value") for e in pod["initContainers"][0]["env"]}
    assert claims["backups"] == env["ES4PS_BACKUP_VOLUME_CLAIM"] == "campus-backups"
    assert env["ES4PS_BACKUP_LOCATION"] == "volume:campus-backups/campus/campus-1.tar.age"
    assert claims["data"] == "data-acme-dc0-0"  # restored into this domain's own DC volume


def test_a_restore_trusts_the_key_its_domain_names_never_the_backups_status(config):
    def fetch_step(domain):
        [restore] = plan_recovery(domain, config, {}, [backup()], {}).jobs
        pod = restore["spec"]["template"]["spec"]
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        env = {e["name"]: e.get("value") for e in pod["initContainers"][0]["env"]}
        return secrets["backup-signing"], env["ES4PS_BACKUP_ACCEPT_UNSIGNED"]

    assert fetch_step(recovering()) == ("acme-backup-signing-key", "false")  # its own, kept when a domain goes
    named = make_domain(
        directory={
            "bootstrap": {"recovery": {"backup": "acme-20261127-0200", "trustedKeySecret": "old-backup-signing-key"}},
            "backup": VOLUME_BACKUP,
        }
    )
    assert fetch_step(named) == ("old-backup-signing-key", "false")
    unsigned = make_domain(
        directory={
            "bootstrap": {"recovery": {"backup": "acme-20261127-0200", "acceptUnsigned": True}},
            "backup": VOLUME_BACKUP,
        }
    )
    assert fetch_step(unsigned) == ("acme-backup-signing-key", "true")


def test_a_recovery_waits_until_the_deleted_domains_volumes_are_gone(config):
    """A restore Pod naming a claim that is being deleted would keep it from going, and wait for ever."""
    domain = recovering()
    assert recovery_claims(domain) == ["data-acme-dc0-0", "data-acme-portal-0"]
    plan = plan_recovery(domain, config, {}, [backup()], {}, claims_being_deleted=["data-acme-portal-0"])
    assert plan.proceed and not plan.workloads and not plan.jobs and not plan.volumes
    assert "data-acme-portal-0" in plan.check.message
    assert recovery_claims(make_domain()) == []


# --- backups ------------------------------------------------------------------------------------------


def slot(schedule, moment, created=datetime.datetime(2026, 1, 1, tzinfo=UTC)):
    domain = make_domain(directory={"backup": {**VOLUME_BACKUP, "schedule": schedule}})
    return due_slot(domain.directory.backup, moment, created)


def test_the_schedule_names_the_newest_slot_at_or_before_a_moment():
    moment = datetime.datetime(2026, 11, 27, 11, 30, 20, tzinfo=UTC)
    assert slot("0 2 * * *", moment) == datetime.datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    assert slot("*/15 * * * *", moment) == moment.replace(second=0)  # a slot in this very minute is due
    assert slot("30 23 * * 0", moment) == datetime.datetime(2026, 11, 22, 23, 30, tzinfo=UTC)  # a Sunday
    assert slot("0 0 1,15 * *", moment) == datetime.datetime(2026, 11, 15, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["0 2 * *", "61 * * * *", "* * * 13 *", "a * * * *", "*/0 * * * *", "0 2 30 2 *"])
def test_a_schedule_cron_refuses_is_read_with_why_and_never_due(bad):
    domain = make_domain(directory={"backup": {**VOLUME_BACKUP, "schedule": bad}})
    assert domain.directory.backup.schedule_error.startswith(f"{bad!r} is not a cron schedule: ")
    assert due_slot(domain.directory.backup, datetime.datetime(2026, 11, 27, tzinfo=UTC), domain.created) is None
    check = backups_check(domain, [])
    assert (check.ready, check.reason) == (False, "InvalidSchedule")


def test_only_the_newest_missed_slot_is_due_and_none_before_the_domain_existed():
    now = datetime.datetime(2026, 11, 27, 11, 30, tzinfo=UTC)
    created = datetime.datetime(2026, 11, 20, tzinfo=UTC)
    assert slot("0 2 * * *", now, created) == datetime.datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    assert slot("0 2 * * *", now, datetime.datetime(2026, 11, 27, 3, tzinfo=UTC)) is None
    assert scheduled_backup_name(make_domain(), slot("0 2 * * *", now, created)) == "acme-20261127-0200"


def test_retention_keeps_the_newest_completed_and_never_counts_failed_ones():
    history = [
        backup("b1", completed_at="2026-11-25T02:01:00Z"),
        backup("b2", completed_at="2026-11-26T02:01:00Z"),
        backup("b3", phase=FAILED, completed_at="2026-11-27T02:01:00Z"),
    ]
    assert [b.name for b in beyond_keep(history, keep=2)] == []
    assert [b.name for b in beyond_keep(history, keep=2, adding=1)] == ["b1"]  # once another completes


def test_a_backup_job_can_encrypt_but_never_decrypt_and_deletes_only_what_retention_says(config):
    domain = make_domain(directory={"backup": VOLUME_BACKUP})
    owner = {"apiVersion": "es4ps.io/v1alpha1", "kind": "ES4PSBackup", "name": "b4", "uid": "u", "controller": True}
    job_ = backup_job(domain, config, "b4", owner, ["volume:acme-backups/b1.tar.age"])
    pod = job_["spec"]["template"]["spec"]
    assert job_["metadata"]["ownerReferences"] == [owner]
    assert [c["name"] for c in pod["initContainers"]] == ["directory", "portal"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["backup-key"]["secret"]["items"] == [{"key": "recipient", "path": "recipient"}]
    store = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert store["ES4PS_BACKUP_DELETE"] == "volume:acme-backups/b1.tar.age"
    assert volumes["backups"]["persistentVolumeClaim"]["claimName"] == "acme-backups"
    assert volumes["portal-data"]["persistentVolumeClaim"]["claimName"] == "data-acme-portal-0"


def test_the_backup_key_is_generated_once_and_never_deleted_with_the_domain(config):
    for policy in ("Retain", "Delete"):
        domain = make_domain(directory={"backup": VOLUME_BACKUP}, deletionPolicy=policy)
        [key] = [s for s in build_desired_state(domain, config).generated_secrets if s.name == "acme-backup-key"]
        assert "ownerReferences" not in key.manifest["metadata"] and not key.follows_deletion_policy
    keys = generate_backup_key()
    assert keys["recipient"].startswith("age1") and keys["identity"].startswith("AGE-SECRET-KEY-1")
    sealed = pyrage.encrypt(b"backup", [pyrage.x25519.Recipient.from_str(keys["recipient"])])
    assert pyrage.decrypt(sealed, [pyrage.x25519.Identity.from_str(keys["identity"])]) == b"backup"
    named = make_domain(directory={"backup": {**VOLUME_BACKUP, "encryptionKeySecretRef": {"name": "mine"}}})
    assert "acme-backup-key" not in {s.name for s in build_desired_state(named, config).generated_secrets}


def test_the_store_steps_result_is_read_and_junk_ignored():
    message = 'storing...\n{"location": "s3://b/p/x.tar.age", "sizeBytes": 1234, "sha256": "ab", "other": 1}'
    assert parse_result(message) == {"location": "s3://b/p/x.tar.age", "sizeBytes": 1234, "sha256": "ab"}
    assert parse_result("Traceback ...") == {} and parse_result(None) == {}


def test_a_backups_result_and_failure_come_from_the_steps_that_wrote_them():
    dumped = StepEnd("directory", 0, '{"file": "/var/lib/es4ps-job/directory.tar.bz2"}')
    stored = StepEnd("store", 0, '{"location": "volume:b/acme/x.tar.age", "sizeBytes": 9, "sha256": "ab"}')
    assert stored_result([dumped, StepEnd("portal", 0, ""), stored]) == {
        "location": "volume:b/acme/x.tar.age",
        "sizeBytes": 9,
        "sha256": "ab",
    }
    assert stored_result([dumped, StepEnd("store", 1, '{"location": "x"}')]) == {}
    # A step that succeeded is no reason; the one that failed is named with its last line.
    failed = StepEnd("portal", 1, "Traceback ...\nOperationalError: unable to open database file\n")
    assert failure_reason([dumped, failed], "BackoffLimitExceeded") == (
        "step portal: OperationalError: unable to open database file"
    )
    assert failure_reason([dumped], "BackoffLimitExceeded") == "BackoffLimitExceeded"
