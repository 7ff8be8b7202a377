# People imported from ES4PS-Containers (accounts.imports): when, and the state of an account not claimed yet.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0010_mail_and_registration_queues"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="imported_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="imported at"),
        ),
        migrations.AlterField(
            model_name="user",
            name="directory_state",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "not in the directory"),
                    ("pending", "being created"),
                    ("created", "created, disabled"),
                    ("enabled", "enabled"),
                    ("disabled", "disabled by staff"),
                    ("failed", "failed"),
                    ("unclaimed", "imported, not claimed yet"),
                ],
                default="",
                max_length=16,
                verbose_name="directory account",
            ),
        ),
    ]
