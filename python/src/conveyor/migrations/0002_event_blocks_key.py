from django.db import migrations, models

import conveyor.schema_sql


class Migration(migrations.Migration):
    dependencies = [
        ("conveyor", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="blocks_key",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.RunPython(
            conveyor.schema_sql.key_index_v2,
            conveyor.schema_sql.key_index_v1,
            atomic=False,
        ),
    ]
