"""The outbox: a task keeps its signed envelope until the relay has published it.

Tasks written before this migration were published when they were written,
so they count as published (at their creation) and the relay never sees them.
"""

from django.conf import settings
from django.db import migrations, models
from django.db.models import F


def mark_earlier_tasks_published(apps, schema_editor):
    ProvisioningTask = apps.get_model("provisioning", "ProvisioningTask")
    ProvisioningTask.objects.filter(published_at=None).update(published_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0002_task_user_newest"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="provisioningtask",
            name="envelope",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="provisioningtask",
            name="published_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(mark_earlier_tasks_published, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="provisioningtask",
            index=models.Index(condition=models.Q(published_at__isnull=True), fields=["id"], name="task_outbox"),
        ),
    ]
