"""The language mails are written in, and when the directory password was set (for expiry reminders).

Existing accounts take the time of the last password the directory took for
them through the portal (their account's creation, a change or a reset): the
reminders start from it until the person next signs in, which reads the
directory's own pwdLastSet.
"""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def fill_password_set_at(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    ProvisioningTask = apps.get_model("provisioning", "ProvisioningTask")
    last_set = (
        ProvisioningTask.objects.filter(
            user=OuterRef("pk"), operation__in=("create_user", "set_password"), state="done"
        )
        .order_by("-finished_at")
        .values("finished_at")[:1]
    )
    User.objects.filter(password_set_at=None).update(password_set_at=Subquery(last_set))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_approval_and_policy"),
        ("provisioning", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="language",
            field=models.CharField(blank=True, max_length=8, verbose_name="language"),
        ),
        migrations.AddField(
            model_name="user",
            name="password_reminder_sent",
            field=models.PositiveSmallIntegerField(blank=True, null=True, verbose_name="expiry reminder sent"),
        ),
        migrations.AddField(
            model_name="user",
            name="password_set_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="password set at"),
        ),
        migrations.RunPython(fill_password_set_at, migrations.RunPython.noop),
    ]
