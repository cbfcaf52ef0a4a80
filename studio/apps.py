from django.apps import AppConfig


class StudioConfig(AppConfig):
    name = "studio"
    verbose_name = "Image Studio"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django_q.signals import post_spawn

        from studio import tasks

        post_spawn.connect(tasks.on_worker_start, dispatch_uid="studio-recover-on-start")
