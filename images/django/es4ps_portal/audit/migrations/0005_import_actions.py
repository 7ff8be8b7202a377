# The audit actions of the import from ES4PS-Containers and of the claim of an imported account.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_computers"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditrecord",
            name="action",
            field=models.CharField(
                choices=[
                    ("register", "register"),
                    ("verify_email", "confirm the e-mail address"),
                    ("change_password", "change the password"),
                    ("reset_password", "reset the password"),
                    ("change_profile", "change the name"),
                    ("withdraw_registration", "withdraw a registration the directory refused"),
                    ("claim_account", "claim an imported account"),
                    ("expire_registration", "expire an unconfirmed registration"),
                    ("import_account", "import a person from ES4PS-Containers"),
                    ("staff_sign_in", "sign in to the admin"),
                    ("enroll_second_factor", "enrol a second factor"),
                    ("disable_account", "disable the account"),
                    ("enable_account", "enable the account"),
                    ("delete_account", "delete the account"),
                    ("resend_verification_mail", "send the verification mail again"),
                    ("send_password_reset_mail", "send a password-reset mail"),
                    ("approve_registration", "approve the registration"),
                    ("refuse_registration", "refuse the registration"),
                    ("apply_policy", "move the account to its policy"),
                    ("prestage_computer", "pre-stage a computer"),
                    ("disable_computer", "disable the computer"),
                    ("enable_computer", "enable the computer"),
                    ("reset_computer", "reset the computer"),
                    ("move_computer", "move the computer"),
                    ("delete_computer", "delete the computer"),
                    ("directory_result", "directory task finished"),
                ],
                max_length=32,
                verbose_name="what",
            ),
        ),
    ]
