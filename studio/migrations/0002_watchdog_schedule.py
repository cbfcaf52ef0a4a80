from django.db import migrations
from django.utils import timezone


def create_watchdog(apps, schema_editor):
    # Idempotent: one row, found by name, whatever the number of deployments or migrations.
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="studio-watchdog",
        defaults={
            "func": "studio.tasks.watchdog",
            "schedule_type": "I",
            "minutes": 1,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )


def remove_watchdog(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="studio-watchdog").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("studio", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_watchdog, remove_watchdog)]
