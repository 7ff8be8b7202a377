"""Manual approval, what the account's policy gave it, 'disabled by staff', and the staff permissions."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_user_lookups_and_indexes"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="user",
            options={
                "permissions": [
                    (
                        "manage_directory_account",
                        "Can disable, enable, delete and move directory accounts and mail people",
                    ),
                    ("approve_registration", "Can approve or refuse registrations (and is mailed when one waits)"),
                ]
            },
        ),
        migrations.AddField(
            model_name="user",
            name="approval",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "not needed"),
                    ("waiting", "waiting for approval"),
                    ("approved", "approved"),
                    ("refused", "refused"),
                ],
                default="",
                max_length=16,
                verbose_name="approval",
            ),
        ),
        migrations.AddField(
            model_name="user",
            name="directory_groups",
            field=models.JSONField(blank=True, default=list, verbose_name="groups"),
        ),
        migrations.AddField(
            model_name="user",
            name="directory_ou",
            field=models.CharField(blank=True, max_length=64, verbose_name="OU"),
        ),
        migrations.AddField(
            model_name="user",
            name="directory_unix",
            field=models.BooleanField(default=False, verbose_name="Unix attributes"),
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
                ],
                default="",
                max_length=16,
                verbose_name="directory account",
            ),
        ),
    ]
