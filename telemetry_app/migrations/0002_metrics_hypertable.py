"""``metrics`` becomes a hypertable on TimescaleDB; elsewhere this migration does nothing."""

from django.db import migrations

from telemetry_app.timescale import convert_metrics_to_hypertable


def forwards(apps, schema_editor):
    convert_metrics_to_hypertable(schema_editor)


class Migration(migrations.Migration):
    # CREATE EXTENSION and create_hypertable want their own transaction on some versions.
    atomic = False

    dependencies = [("telemetry_app", "0001_initial")]

    # A hypertable cannot be turned back into a plain table in place; reversing leaves it be.
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)]
