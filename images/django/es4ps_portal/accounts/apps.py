from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "es4ps_portal.accounts"
    label = "accounts"
    verbose_name = "Accounts"
