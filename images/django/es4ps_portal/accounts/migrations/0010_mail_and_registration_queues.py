# The queues requests leave work in: mails (sent by the consumer's mail relay, accounts.mail_outbox) and registration
# forms (made, or their address mailed why not, by the consumer: web.registrations).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0009_registered_from"),
    ]

    operations = [
        migrations.CreateModel(
            name="QueuedMail",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("verify", "the verification link and code of a registration"),
                            ("reset", "a reset link for an account"),
                            ("reset_by_address", "a reset link for the enabled account of an address, if there is one"),
                            ("notice", "a mail of its own template"),
                        ],
                        max_length=16,
                    ),
                ),
                ("address", models.EmailField(blank=True, max_length=254)),
                ("recipients", models.JSONField(blank=True, default=list)),
                ("template", models.CharField(blank=True, max_length=100)),
                ("context", models.JSONField(blank=True, default=dict)),
                ("language", models.CharField(blank=True, max_length=8)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                ("not_before", models.DateTimeField(blank=True, null=True)),
                ("message", models.JSONField(blank=True, null=True)),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["not_before", "id"], name="queued_mail_due")],
            },
        ),
        migrations.CreateModel(
            name="RegistrationRequest",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("registration_id", models.UUIDField(editable=False, unique=True)),
                ("username", models.CharField(max_length=150)),
                ("email", models.EmailField(max_length=254)),
                ("first_name", models.CharField(max_length=150)),
                ("last_name", models.CharField(max_length=150)),
                ("sealed_password", models.TextField(blank=True)),
                ("language", models.CharField(blank=True, max_length=8)),
                ("address", models.GenericIPAddressField(blank=True, null=True)),
                ("registered_from", models.CharField(blank=True, max_length=64)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("handled_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "ordering": ["id"],
            },
        ),
    ]
