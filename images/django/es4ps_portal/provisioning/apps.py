from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "es4ps_portal.provisioning"
    label = "provisioning"
    verbose_name = "Directory tasks"
