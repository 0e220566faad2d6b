import conveyor.ids
import conveyor.schema_sql
import django.core.serializers.json
import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='Event',
            fields=[
                ('id', models.UUIDField(default=conveyor.ids.uuid7, editable=False, primary_key=True, serialize=False)),
                ('event_type', models.CharField(max_length=255)),
                ('source', models.CharField(max_length=255)),
                ('key', models.CharField(blank=True, help_text='Ordering key: events sharing it are delivered in order.', max_length=255, null=True)),
                ('subject', models.CharField(blank=True, max_length=255, null=True)),
                ('data', models.JSONField(encoder=django.core.serializers.json.DjangoJSONEncoder)),
                ('headers', models.JSONField(default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder)),
                ('idempotency_key', models.CharField(blank=True, max_length=255, null=True, unique=True)),
                ('created_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                ('available_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), help_text='Earliest time the relay may deliver the event.')),
                ('status', models.PositiveSmallIntegerField(choices=[(0, 'pending'), (1, 'published'), (2, 'dead')], db_default=0, default=0)),
                ('attempts', models.PositiveIntegerField(db_default=0, default=0)),
                ('last_error', models.TextField(blank=True, null=True)),
                ('published_at', models.DateTimeField(blank=True, null=True)),
                ('locked_by', models.CharField(blank=True, max_length=128, null=True)),
                ('locked_until', models.DateTimeField(blank=True, null=True)),
                ('lease_token', models.BigIntegerField(db_default=0, default=0)),
            ],
            options={
                'verbose_name': 'event',
                'verbose_name_plural': 'events',
                'db_table': 'conveyor_event',
                'ordering': ['id'],
            },
        ),
        migrations.RunPython(
            conveyor.schema_sql.create_claim_indexes,
            conveyor.schema_sql.drop_claim_indexes,
            # DDL: MySQL cannot run it inside the transaction RunPython would open there.
            atomic=False,
        ),
        migrations.RunPython(
            conveyor.schema_sql.create_notify_trigger,
            conveyor.schema_sql.drop_notify_trigger,
            # DDL: MySQL cannot run it inside the transaction RunPython would open there.
            atomic=False,
        ),
    ]
