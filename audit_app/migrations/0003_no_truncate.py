"""On PostgreSQL, TRUNCATE of ``audit_logs`` refused too (finding 5 of the review: it went past
the row trigger, which fires for UPDATE and DELETE only).

A statement-level trigger refuses TRUNCATE from any role that is not a member of the table's
owner: the role the site runs as (``manage.py grant_site_role``) has no TRUNCATE privilege
either, and cannot drop the trigger, which only the owner can. The owner, the migration role,
may still TRUNCATE on purpose (archiving, docs/operations.md; Django's test runner empties
tables that way), as it could always drop the trigger.
"""

from django.db import migrations

PG_NO_TRUNCATE = """
CREATE FUNCTION audit_logs_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_has_role(
        current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER'
    ) THEN
        RAISE EXCEPTION 'audit_logs is append-only: TRUNCATE is not allowed'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER audit_logs_no_truncate
    BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_no_truncate();
"""

PG_NO_TRUNCATE_REVERSE = """
DROP TRIGGER IF EXISTS audit_logs_no_truncate ON audit_logs;
DROP FUNCTION IF EXISTS audit_logs_no_truncate();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_NO_TRUNCATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_NO_TRUNCATE_REVERSE, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit_app", "0002_suspicious_view_and_append_only")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
