"""The apply_policy operation (staff move an account to its policy)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0003_outbox"),
    ]

    operations = [
        migrations.AlterField(
            model_name="provisioningtask",
            name="operation",
            field=models.CharField(
                choices=[
                    ("create_user", "create the account"),
                    ("enable_user", "enable the account"),
                    ("disable_user", "disable the account"),
                    ("update_attributes", "update your name"),
                    ("set_password", "set the password"),
                    ("delete_user", "delete the account"),
                    ("apply_policy", "move the account to its OU and groups"),
                ],
                max_length=32,
            ),
        ),
    ]
