from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    name = "studio.simulator"
    label = "simulator"
    verbose_name = "Gateway simulator"
    default_auto_field = "django.db.models.BigAutoField"
