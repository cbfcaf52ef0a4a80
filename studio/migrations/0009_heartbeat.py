import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("studio", "0008_teams_sharing"),
    ]

    operations = [
        migrations.CreateModel(
            name="Heartbeat",
            fields=[
                ("identity", models.CharField(max_length=100, primary_key=True, serialize=False)),
                ("kind", models.CharField(choices=[("cluster", "worker cluster"), ("lane", "lane")],
                                          default="cluster", max_length=20)),
                ("host", models.CharField(max_length=100)),
                ("started", models.DateTimeField(default=django.utils.timezone.now)),
                ("beat", models.DateTimeField(db_index=True)),
            ],
        ),
    ]
