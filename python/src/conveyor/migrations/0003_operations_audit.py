import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("conveyor", "0002_event_blocks_key"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("at", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                (
                    "actor",
                    models.CharField(
                        help_text="Who: OS user, Django user or relay id.", max_length=255
                    ),
                ),
                ("action", models.CharField(max_length=32)),
                (
                    "event",
                    models.UUIDField(
                        blank=True, db_index=True, help_text="Event id, if one.", null=True
                    ),
                ),
                ("detail", models.TextField(blank=True, default="")),
            ],
            options={
                "verbose_name": "audit entry",
                "verbose_name_plural": "audit trail",
                "db_table": "conveyor_audit",
                "ordering": ["-at", "-id"],
            },
        ),
        migrations.AddField(
            model_name="event",
            name="discarded_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
