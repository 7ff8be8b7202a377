from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "es4ps_portal.web"
    label = "web"
    verbose_name = "Pages"

    def ready(self) -> None:
        # The admin's autodiscovery imports web.admin only; the computers' admin registers itself on import.
        from . import computer_admin  # noqa: F401
