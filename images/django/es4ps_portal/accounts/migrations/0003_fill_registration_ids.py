"""Every existing registration gets its id (the directory account takes it on with its address, see the worker)."""

import uuid

from django.db import migrations


def fill_registration_ids(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    for pk in User.objects.filter(registration_id=None).values_list("pk", flat=True).iterator():
        User.objects.filter(pk=pk).update(registration_id=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_registration_binding")]

    operations = [migrations.RunPython(fill_registration_ids, migrations.RunPython.noop)]
