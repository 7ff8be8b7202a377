"""The audit trail, append-only in the database too: a trigger refuses every UPDATE (and TRUNCATE on PostgreSQL).

DELETE stays possible, since the retention prune needs it; docs/portal.md says
what a database administrator can still do.
"""

import django.utils.timezone
from django.db import migrations, models

REFUSAL = "audit records are append-only"
TRIGGERS = {
    "sqlite": [
        f"CREATE TRIGGER audit_auditrecord_no_update BEFORE UPDATE ON audit_auditrecord"
        f" BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION audit_auditrecord_refuse() RETURNS trigger LANGUAGE plpgsql AS"
        f" $$ BEGIN RAISE EXCEPTION '{REFUSAL}'; END $$",
        "CREATE TRIGGER audit_auditrecord_no_update BEFORE UPDATE ON audit_auditrecord"
        " FOR EACH ROW EXECUTE FUNCTION audit_auditrecord_refuse()",
        "CREATE TRIGGER audit_auditrecord_no_truncate BEFORE TRUNCATE ON audit_auditrecord"
        " FOR EACH STATEMENT EXECUTE FUNCTION audit_auditrecord_refuse()",
    ],
}
DROP = {
    "sqlite": ["DROP TRIGGER IF EXISTS audit_auditrecord_no_update"],
    "postgresql": ["DROP FUNCTION IF EXISTS audit_auditrecord_refuse() CASCADE"],
}


def _run(statements):
    def run(apps, schema_editor):
        for statement in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="AuditRecord",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "at",
                    models.DateTimeField(
                        db_index=True, default=django.utils.timezone.now, editable=False, verbose_name="when"
                    ),
                ),
                ("actor", models.CharField(max_length=255, verbose_name="who")),
                (
                    "actor_kind",
                    models.CharField(
                        choices=[
                            ("person", "person"),
                            ("staff", "staff"),
                            ("system", "the portal"),
                            ("directory", "directory worker"),
                        ],
                        max_length=16,
                        verbose_name="who is it",
                    ),
                ),
                ("address", models.GenericIPAddressField(blank=True, null=True, verbose_name="from address")),
                (
                    "action",
                    models.CharField(
                        choices=[
                            ("register", "register"),
                            ("verify_email", "confirm the e-mail address"),
                            ("change_password", "change the password"),
                            ("reset_password", "reset the password"),
                            ("change_profile", "change the name"),
                            ("expire_registration", "expire an unconfirmed registration"),
                            ("disable_account", "disable the account"),
                            ("enable_account", "enable the account"),
                            ("delete_account", "delete the account"),
                            ("resend_verification_mail", "send the verification mail again"),
                            ("send_password_reset_mail", "send a password-reset mail"),
                            ("approve_registration", "approve the registration"),
                            ("refuse_registration", "refuse the registration"),
                            ("apply_policy", "move the account to its policy"),
                            ("directory_result", "directory task finished"),
                        ],
                        max_length=32,
                        verbose_name="what",
                    ),
                ),
                ("subject", models.CharField(blank=True, db_index=True, max_length=150, verbose_name="account")),
                ("registration", models.UUIDField(blank=True, null=True, verbose_name="registration")),
                (
                    "outcome",
                    models.CharField(
                        choices=[
                            ("requested", "requested"),
                            ("succeeded", "succeeded"),
                            ("failed", "failed"),
                            ("rejected", "rejected"),
                        ],
                        max_length=16,
                        verbose_name="outcome",
                    ),
                ),
                ("task_id", models.UUIDField(blank=True, db_index=True, null=True, verbose_name="directory task")),
                ("detail", models.CharField(blank=True, max_length=500, verbose_name="detail")),
            ],
            options={
                "verbose_name": "audit record",
                "verbose_name_plural": "audit records",
                "ordering": ["-at", "-id"],
            },
        ),
        migrations.RunPython(_run(TRIGGERS), _run(DROP)),
    ]
