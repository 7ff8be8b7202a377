"""The outbox keeps a task's fields, signed when the relay sends them; a new account's create can be held.

Tasks the previous release left unpublished kept a signed envelope: their
fields are kept and the relay signs them afresh when it sends them (the old
signature and its issue time are dropped). Nothing of the previous release is
held: its registrations' accounts were created when they registered.
"""

from django.db import migrations, models
from django.db.models import Q


def keep_the_fields_of_waiting_envelopes(apps, schema_editor):
    ProvisioningTask = apps.get_model("provisioning", "ProvisioningTask")
    for task in ProvisioningTask.objects.filter(published_at=None).exclude(envelope=None).iterator():
        task.payload = task.envelope["payload"]
        task.save(update_fields=["payload"])


class Migration(migrations.Migration):
    dependencies = [("provisioning", "0004_apply_policy_operation")]

    operations = [
        migrations.AddField(
            model_name="provisioningtask",
            name="payload",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="provisioningtask",
            name="held",
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.RunPython(keep_the_fields_of_waiting_envelopes, migrations.RunPython.noop),
        migrations.RemoveField(model_name="provisioningtask", name="envelope"),
        migrations.RemoveIndex(model_name="provisioningtask", name="task_outbox"),
        migrations.AddIndex(
            model_name="provisioningtask",
            index=models.Index(
                condition=Q(published_at__isnull=True, held=False), fields=["id"], name="task_outbox_ready"
            ),
        ),
    ]
