"""The ``suspicious_activities`` view (both vendors) and, on PostgreSQL, the append-only trigger.

SQLite has no ``NOW() - INTERVAL``; its view compares Django's UTC text timestamps with
``strftime`` in the same format, which sorts the same way.
"""

from django.db import migrations

PG_VIEW = """
CREATE VIEW suspicious_activities AS
SELECT actor, COUNT(*) AS failed_attempts, MAX(created_at) AS last_attempt
FROM audit_logs
WHERE success = FALSE AND created_at > NOW() - INTERVAL '1 hour'
GROUP BY actor
HAVING COUNT(*) >= 5;
"""

SQLITE_VIEW = """
CREATE VIEW suspicious_activities AS
SELECT actor, COUNT(*) AS failed_attempts, MAX(created_at) AS last_attempt
FROM audit_logs
WHERE success = 0 AND created_at > strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 hour')
GROUP BY actor
HAVING COUNT(*) >= 5;
"""

PG_APPEND_ONLY = """
CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_logs_append_only
    BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only();
"""

PG_APPEND_ONLY_REVERSE = """
DROP TRIGGER IF EXISTS audit_logs_append_only ON audit_logs;
DROP FUNCTION IF EXISTS audit_logs_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_VIEW, params=None)
        # params=None: psycopg must not read the % of RAISE as a placeholder.
        schema_editor.execute(PG_APPEND_ONLY, params=None)
    else:
        schema_editor.execute(SQLITE_VIEW, params=None)


def backwards(apps, schema_editor):
    schema_editor.execute("DROP VIEW IF EXISTS suspicious_activities")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_APPEND_ONLY_REVERSE)


class Migration(migrations.Migration):
    dependencies = [("audit_app", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
