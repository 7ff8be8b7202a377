"""The domain's computers: their table, and the computer tasks (a task names an account, a computer, or neither)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0006_not_applied_state"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Computer",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=64, unique=True, verbose_name="name")),
                (
                    "record_id",
                    models.UUIDField(blank=True, editable=False, null=True, unique=True, verbose_name="record"),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("pending", "being pre-staged"),
                            ("present", "in the directory"),
                            ("failed", "pre-staging failed"),
                        ],
                        default="present",
                        max_length=16,
                        verbose_name="state",
                    ),
                ),
                ("ou", models.CharField(blank=True, max_length=64, verbose_name="OU")),
                ("container", models.CharField(blank=True, max_length=1024, verbose_name="where")),
                ("operating_system", models.CharField(blank=True, max_length=128, verbose_name="operating system")),
                ("os_version", models.CharField(blank=True, max_length=64, verbose_name="OS version")),
                ("last_logon", models.DateTimeField(blank=True, null=True, verbose_name="last logon")),
                ("enabled", models.BooleanField(null=True, verbose_name="enabled")),
                ("joined", models.BooleanField(default=False, verbose_name="joined")),
                ("reported_at", models.DateTimeField(blank=True, null=True, verbose_name="reported at")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["name"],
                "permissions": [
                    ("manage_computers", "Can pre-stage, disable, enable, reset, move and delete computers")
                ],
            },
        ),
        migrations.AlterField(
            model_name="provisioningtask",
            name="operation",
            field=models.CharField(
                choices=[
                    ("create_user", "create the account"),
                    ("enable_user", "enable the account"),
                    ("disable_user", "disable the account"),
                    ("update_attributes", "update your name"),
                    ("set_password", "set the password"),
                    ("delete_user", "delete the account"),
                    ("apply_policy", "move the account to its OU and groups"),
                    ("prestage_computer", "pre-stage the computer"),
                    ("enable_computer", "enable the computer"),
                    ("disable_computer", "disable the computer"),
                    ("reset_computer", "reset the computer"),
                    ("move_computer", "move the computer"),
                    ("delete_computer", "delete the computer"),
                    ("report_computers", "report the domain's computers"),
                ],
                max_length=32,
            ),
        ),
        migrations.AlterField(
            model_name="provisioningtask",
            name="user",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="provisioning_tasks",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="provisioningtask",
            name="computer",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="tasks",
                to="provisioning.computer",
            ),
        ),
    ]
