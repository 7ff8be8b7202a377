"""A task the worker did not apply on purpose (a newer change of its kind was) is "not applied", never "done"."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0005_signed_when_sent_and_held_creates"),
    ]

    operations = [
        migrations.AlterField(
            model_name="provisioningtask",
            name="state",
            field=models.CharField(
                choices=[("queued", "queued"), ("done", "done"), ("failed", "failed"), ("not_applied", "not applied")],
                default="queued",
                max_length=16,
            ),
        ),
    ]
