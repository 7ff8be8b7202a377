"""ProvisioningTask moves here from the accounts app; its table (accounts_provisioningtask) stays as it is."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("accounts", "0004_registration_id_required"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ProvisioningTask",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("task_id", models.UUIDField(editable=False, unique=True)),
                        (
                            "operation",
                            models.CharField(
                                choices=[
                                    ("create_user", "create the account"),
                                    ("enable_user", "enable the account"),
                                    ("disable_user", "disable the account"),
                                    ("update_attributes", "update your name"),
                                    ("set_password", "set the password"),
                                    ("delete_user", "delete the account"),
                                ],
                                max_length=32,
                            ),
                        ),
                        (
                            "state",
                            models.CharField(
                                choices=[("queued", "queued"), ("done", "done"), ("failed", "failed")],
                                default="queued",
                                max_length=16,
                            ),
                        ),
                        ("reason", models.CharField(blank=True, max_length=500)),
                        ("worker", models.CharField(blank=True, max_length=255)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="provisioning_tasks",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={"db_table": "accounts_provisioningtask", "ordering": ["-created_at", "-id"]},
                ),
            ],
            database_operations=[],
        ),
    ]
