"""Protocol 2: the recorder reads each stream with a cursor kept beside the rows (no ledger), and
the message log keeps each message's W3C trace context."""

import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("messaging_app", "0003_recorder_ledger")]

    operations = [
        migrations.AddField(
            model_name="messagelog",
            name="traceparent",
            field=models.CharField(blank=True, max_length=55, null=True),
        ),
        migrations.CreateModel(
            name="RecorderCursor",
            fields=[
                ("stream", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("last_id", models.CharField(default="0-0", max_length=41)),
                (
                    "updated_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
            ],
            options={"db_table": "message_log_cursors"},
        ),
        migrations.DeleteModel(name="RecordedEvent"),
    ]
