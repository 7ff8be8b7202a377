"""The audit trail: what people and the portal do is recorded, nothing can change a record, old ones are pruned,
and the trail exports as JSON lines. In process, with the real broker and SMTP server."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone
from es4ps_portal.accounts.models import User
from es4ps_portal.audit.models import AppendOnly, AuditRecord
from es4ps_portal.audit.records import Actor, record
from es4ps_portal.provisioning.expiry import expire_unverified_registrations
from es4ps_testkit.admin_sign_in import sign_in_staff
from es4ps_testkit.in_process import consumer_round
from es4ps_testkit.live_portal import LivePortal
from es4ps_testkit.mail import MailCatcher
from es4ps_testkit.registration import ALLOWED_DOMAIN, form, unique_username

pytestmark = pytest.mark.django_db

PERSON_ADDRESS = "203.0.113.9"


def trail(username: str) -> list[tuple[str, str, str, str | None, str]]:
    found = AuditRecord.objects.filter(subject=username).order_by("at", "id")
    return list(found.values_list("action", "actor", "actor_kind", "address", "outcome"))


def test_what_a_person_and_the_portal_do_is_recorded_with_who_and_where(broker, smtp: MailCatcher, settings):
    username = unique_username("a")
    browser = Client(HTTP_X_FORWARDED_FOR=f"10.0.0.1, {PERSON_ADDRESS}")  # the Ingress appended the real one
    assert browser.post("/register/", form(username)).status_code == 302
    consumer_round()
    code = smtp.wait_for(f"{username}@{ALLOWED_DOMAIN}").text.split("type this code on the status page: ", 1)[1][:6]
    browser.post("/verify/code/", {"code": code})
    user = User.objects.get(username=username)
    User.objects.filter(pk=user.pk).update(directory_state=User.DirectoryState.ENABLED)
    browser.force_login(user, backend="es4ps_portal.accounts.backends.DirectoryBackend")
    browser.post("/account/", {"first_name": "Augusta", "last_name": "King"})
    # Another registration expires (the portal itself acts).
    expired = unique_username("e")
    User.objects.create(username=expired, email=f"{expired}@{ALLOWED_DOMAIN}", directory_state="pending")
    User.objects.filter(username=expired).update(date_joined=timezone.now() - timedelta(days=30))
    expire_unverified_registrations()

    assert trail(username) == [
        ("register", username, "person", PERSON_ADDRESS, "requested"),
        ("verify_email", username, "person", PERSON_ADDRESS, "requested"),
        ("change_profile", username, "person", PERSON_ADDRESS, "requested"),
    ]
    assert trail(expired) == [("expire_registration", "es4ps-portal", "system", None, "requested")]
    # Each request names its task, which the result's record names too.
    register = AuditRecord.objects.get(subject=username, action="register")
    assert str(register.task_id) == str(user.provisioning_tasks.get(operation="create_user").task_id)
    assert register.registration == user.registration_id
    # No password or token in the trail.
    everything = json.dumps([r.as_json() for r in AuditRecord.objects.all()])
    assert form(username)["new_password1"] not in everything and code not in everything


def a_record(**fields) -> AuditRecord:
    return record(AuditRecord.Action.DISABLE_ACCOUNT, Actor("boss", AuditRecord.ActorKind.STAFF, "192.0.2.1"), **fields)


def test_records_cannot_be_changed_or_deleted_in_code_or_in_the_database():
    kept = a_record()
    kept.detail = "rewritten"
    with pytest.raises(AppendOnly):
        kept.save()
    with pytest.raises(AppendOnly):
        kept.delete()
    with pytest.raises(AppendOnly):
        AuditRecord.objects.filter(pk=kept.pk).update(outcome="succeeded")
    with pytest.raises(AppendOnly):
        AuditRecord.objects.filter(pk=kept.pk).delete()
    # Around the code: the database's trigger refuses the UPDATE itself.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditrecord SET outcome = 'succeeded' WHERE id = %s", [kept.pk])
    assert AuditRecord.objects.get(pk=kept.pk).detail == ""


def test_the_prune_deletes_only_records_past_the_retention(settings):
    settings.AUDIT_RETENTION_DAYS = 30
    AuditRecord.objects.create(
        at=timezone.now() - timedelta(days=31), actor="boss", actor_kind="staff", action="disable_account",
        outcome="requested", detail="old",
    )  # fmt: skip
    a_record(detail="recent")

    assert AuditRecord.objects.prune() == 1
    assert list(AuditRecord.objects.filter(detail__in=["old", "recent"]).values_list("detail", flat=True)) == ["recent"]


def export(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("export_audit", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_export_audit_writes_json_lines_since_a_date_or_a_duration():
    AuditRecord.objects.create(
        at=timezone.now() - timedelta(days=10), actor="boss", actor_kind="staff", action="disable_account",
        outcome="requested", subject="older",
    )  # fmt: skip
    newer = a_record(detail="newer")

    lines = export("--since", "2d")
    assert [line["detail"] for line in lines if line["actor"] == "boss"] == ["newer"]
    assert lines[-1] == {
        "at": newer.at.isoformat(),
        "actor": "boss",
        "actor_kind": "staff",
        "address": "192.0.2.1",
        "action": "disable_account",
        "subject": "",
        "registration": None,
        "outcome": "succeeded",
        "task_id": None,
        "detail": "newer",
    }
    since_date = (timezone.now() - timedelta(days=11)).date().isoformat()
    subjects = [line["subject"] for line in export("--since", since_date) if line["actor"] == "boss"]
    assert subjects == ["older", ""]  # oldest first
    with pytest.raises(CommandError, match="--since 'yesterday'"):
        export("--since", "yesterday")


def test_the_trail_is_read_only_in_the_admin_even_for_superusers(db):
    boss = User.objects.create_superuser(unique_username("boss"), "boss@acme.example", "Staff-Passw0rd!1")
    staff = Client()
    sign_in_staff(staff, boss)
    kept = a_record(detail="keep me")

    listed = staff.get("/admin/audit/auditrecord/", {"action__exact": "disable_account"})
    assert listed.status_code == 200 and "keep me" in listed.content.decode()
    assert 'value="delete_selected"' not in listed.content.decode()
    page = staff.get(f"/admin/audit/auditrecord/{kept.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert staff.post(f"/admin/audit/auditrecord/{kept.pk}/change/", {"detail": "x"}).status_code == 403
    assert staff.post(f"/admin/audit/auditrecord/{kept.pk}/delete/", {"post": "yes"}).status_code == 403
    assert staff.get("/admin/audit/auditrecord/add/").status_code == 403
    assert AuditRecord.objects.get(pk=kept.pk).detail == "keep me"


def test_on_postgresql_a_raw_update_and_a_truncate_are_refused(tmp_path, postgres, portal_env, mail_catcher):
    """The trigger on PostgreSQL (the database of several replicas): around the code, as a database user would."""
    import psycopg

    url = postgres.create_database("audit_append_only")
    portal = LivePortal(tmp_path / "portal", {**portal_env, **mail_catcher.portal_env, "ES4PS_DATABASE_URL": url})
    portal.manage("migrate", "--verbosity=0")
    portal.manage(
        "shell",
        "-c",
        "from es4ps_portal.audit.models import AuditRecord as R; from es4ps_portal.audit.records import Actor, record;"
        " record(R.Action.DISABLE_ACCOUNT, Actor('boss', R.ActorKind.STAFF, '192.0.2.1'))",
    )

    with psycopg.connect(url, autocommit=True) as database:
        written = database.execute("SELECT id, actor, outcome, detail FROM audit_auditrecord").fetchall()
        for statement in (
            "UPDATE audit_auditrecord SET outcome = 'failed', detail = 'x'",
            "TRUNCATE audit_auditrecord",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                database.execute(statement)
        assert len(written) == 1
        assert database.execute("SELECT id, actor, outcome, detail FROM audit_auditrecord").fetchall() == written
