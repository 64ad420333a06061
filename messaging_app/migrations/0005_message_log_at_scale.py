# The message log at scale (docs/messaging.md): BIGINT ids, and the indexes the admin's ordering
# and filters need. On PostgreSQL the id change rewrites message_logs under an exclusive lock
# (about a minute per 10 million rows); docs/operations.md says how to upgrade.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("messaging_app", "0004_cursors_traceparent"),
    ]

    operations = [
        migrations.AlterField(
            model_name="messagelog",
            name="id",
            field=models.BigAutoField(primary_key=True, serialize=False),
        ),
        migrations.AddIndex(
            model_name="messagelog",
            index=models.Index(fields=["created_at", "id"], name="idx_messages_created"),
        ),
        migrations.AddIndex(
            model_name="messagelog",
            index=models.Index(
                fields=["message_type", "created_at", "id"], name="idx_messages_type"
            ),
        ),
        migrations.AddIndex(
            model_name="messagelog",
            index=models.Index(
                condition=models.Q(("status__in", ["sent", "delivered"]), _negated=True),
                fields=["status", "created_at", "id"],
                name="idx_messages_status",
            ),
        ),
    ]
