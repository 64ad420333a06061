# What the recorder pays PostgreSQL per row (docs/messaging.md, "What the new guarantees
# cost"): the sender and receiver indexes ascending (read backwards for the newest first), and
# on PostgreSQL the message id index a hash index, for the admin's exact search. Each rebuilds
# its index: about 10 s per 10 million rows, under a lock that holds the recorder's writes.

from django.db import migrations, models

HASH = "CREATE INDEX idx_messages_message_id ON message_logs USING hash (message_id)"
BTREE = "CREATE INDEX idx_messages_message_id ON message_logs (message_id)"


def _message_id_index(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute("DROP INDEX IF EXISTS idx_messages_message_id")
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("messaging_app", "0005_message_log_at_scale"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="messagelog", name="idx_messages_sender"),
        migrations.AddIndex(
            model_name="messagelog",
            index=models.Index(fields=["sender", "created_at"], name="idx_messages_sender"),
        ),
        migrations.RemoveIndex(model_name="messagelog", name="idx_messages_receiver"),
        migrations.AddIndex(
            model_name="messagelog",
            index=models.Index(fields=["receiver", "created_at"], name="idx_messages_receiver"),
        ),
        # The model keeps a plain Index (SQLite has no hash index); PostgreSQL gets a hash one
        # of the same name.
        migrations.RunPython(_message_id_index(HASH), _message_id_index(BTREE)),
    ]
