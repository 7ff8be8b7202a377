import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_fill_registration_ids")]

    operations = [
        migrations.AlterField(
            model_name="user",
            name="registration_id",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True, verbose_name="registration"),
        ),
    ]
