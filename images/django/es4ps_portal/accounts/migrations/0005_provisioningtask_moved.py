"""ProvisioningTask now belongs to the provisioning app (state only: the table stays)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_registration_id_required"),
        ("provisioning", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ProvisioningTask")],
            database_operations=[],
        ),
    ]
