from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "es4ps_portal.web"
    label = "web"
    verbose_name = "Pages"
