from django.db import migrations, models

import conveyor.schema_sql


class Migration(migrations.Migration):

    dependencies = [
        ('conveyor', '0003_operations_audit'),
    ]

    # SQLite rebuilds the table for the AlterField, dropping the claim indexes Django does
    # not know about: restore them afterwards (and, when unapplying, after the rebuild back).
    operations = [
        migrations.RunPython(
            migrations.RunPython.noop, conveyor.schema_sql.key_index_v2, atomic=False
        ),
        migrations.AlterField(
            model_name='event',
            name='idempotency_key',
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AddConstraint(
            model_name='event',
            constraint=models.UniqueConstraint(fields=('idempotency_key',), name='conveyor_event_idempotency_key_uniq'),
        ),
        migrations.RunPython(
            conveyor.schema_sql.key_index_v2, migrations.RunPython.noop, atomic=False
        ),
    ]
