"""Where a registration came from (its client address as the rate limits count it): the cap per address."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0008_password_policy_and_language"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="registered_from",
            field=models.CharField(blank=True, max_length=64, verbose_name="registered from"),
        ),
        migrations.AddIndex(
            model_name="user",
            index=models.Index(
                condition=models.Q(("email_verified_at", None)), fields=["registered_from"], name="user_unverified_from"
            ),
        ),
    ]
