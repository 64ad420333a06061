"""Give the role the site and its workers run as what they need, and no more, on PostgreSQL.

Run by the migration role (the schema's owner) after every ``migrate``: ``scripts/run``,
``scripts/services`` and the systemd web unit do. The site's role may read and write every table
of the schema, except ``audit_logs``, which it may only read and append to: no UPDATE, DELETE or
TRUNCATE, and, not owning it, it can neither drop nor disable its triggers (docs/operations.md).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from psycopg import sql

from audit_app import services as audit


class Command(BaseCommand):
    help = "Grant the site's database role its privileges (audit_logs: SELECT and INSERT only)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("role", help="the role the site, the workers and the recorder use")

    def handle(self, *args: Any, role: str, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("roles are PostgreSQL's: nothing to grant on this database")
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            if cursor.fetchone() is None:
                raise CommandError(f"no role {role!r}: CREATE ROLE it first")
            cursor.execute(
                "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
            )
            me, superuser = cursor.fetchone()
            if me == role:
                raise CommandError("run this as the schema's owner, not as the site's role")
            who = sql.Identifier(role)
            for statement in (
                "GRANT USAGE ON SCHEMA public TO {who}",
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {who}",
                "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {who}",
                "REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_logs FROM {who}",
                "REVOKE TRUNCATE ON ALL TABLES IN SCHEMA public FROM {who}",
            ):
                cursor.execute(sql.SQL(statement).format(who=who).as_string(cursor.connection))
        audit.record("db.grant", me, f"role:{role}", "grant", superuser=superuser)
        self.stdout.write(
            f"granted {role}: every table of the schema; audit_logs SELECT and INSERT only"
        )
