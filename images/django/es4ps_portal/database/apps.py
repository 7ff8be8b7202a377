from django.apps import AppConfig


class DatabaseConfig(AppConfig):
    name = "es4ps_portal.database"
    label = "database"
    verbose_name = "Database dumps"
