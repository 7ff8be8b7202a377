"""Registration ids, password-change times and verification counters (added nullable, filled in 0003)."""

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="user",
            name="registration_id",
            field=models.UUIDField(editable=False, null=True, verbose_name="registration"),
        ),
        migrations.AddField(
            model_name="user",
            name="credentials_changed_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="password changed at"),
        ),
        migrations.AddField(
            model_name="user",
            name="verification_mails",
            field=models.PositiveSmallIntegerField(default=0, verbose_name="verification mails sent"),
        ),
        migrations.AddField(
            model_name="user",
            name="verification_code_failures",
            field=models.PositiveSmallIntegerField(default=0, verbose_name="wrong codes typed"),
        ),
        migrations.AddIndex(
            model_name="user",
            index=models.Index(django.db.models.functions.text.Lower("username"), name="user_username_lower"),
        ),
    ]
