"""The two PostgreSQL roles of a deployment, as `scripts/services` makes them and the systemd
units use them: the migration role owns the schema; the site's role, given its privileges by
``manage.py grant_site_role``, reads and writes every table but may only read and append to
``audit_logs`` (finding 5 of the review: the site's own role owned the table, so it could
TRUNCATE it or drop its trigger)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.fixtures.services import needs_project_services

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parent.parent
OWNER_URL = os.environ.get("FOUNDATION_PG_OWNER_URL")
SITE_URL = os.environ.get("FOUNDATION_PG_SITE_URL")
ADMIN_URL = os.environ.get("FOUNDATION_PG_URL")


def in_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture
def deployment():
    """A database of its own, owned by the migration role, migrated by it, then the site's role
    granted; dropped afterwards."""
    if not (OWNER_URL and SITE_URL and ADMIN_URL):
        needs_project_services("no FOUNDATION_PG_OWNER_URL and _SITE_URL from scripts/services")
    name = f"roles_{uuid.uuid4().hex[:8]}"
    owner = urlsplit(OWNER_URL).username
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    try:
        env = dict(os.environ, DATABASE_URL=in_database(OWNER_URL, name), FOUNDATION_ENV_FILE="")
        for command in (
            ["migrate", "--no-input"],
            ["grant_site_role", urlsplit(SITE_URL).username],
        ):
            subprocess.run(
                [sys.executable, "manage.py", *command],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                timeout=300,
            )
        yield in_database(SITE_URL, name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_sites_role_appends_to_the_audit_log_and_can_do_nothing_else_to_it(deployment):
    with psycopg.connect(deployment, autocommit=True) as conn:
        conn.execute("INSERT INTO audit_logs (event_type, actor) VALUES ('x.y', 'site')")
        rows = conn.execute("SELECT event_type, actor FROM audit_logs ORDER BY id").fetchall()
        assert rows[0][0] == "db.grant"  # grant_site_role audits itself
        assert rows[-1] == ("x.y", "site")
        # Everything else it needs: any other table, read and written.
        conn.execute(
            "INSERT INTO secrets_metadata (secret_name, storage_backend) VALUES ('k', 'local')"
        )
        conn.execute("UPDATE secrets_metadata SET description = 'd'")
        conn.execute("DELETE FROM secrets_metadata")
        for statement in (
            "UPDATE audit_logs SET actor = 'someone-else'",
            "DELETE FROM audit_logs",
            "TRUNCATE audit_logs",
            "DROP TRIGGER audit_logs_append_only ON audit_logs",
            "ALTER TABLE audit_logs DISABLE TRIGGER ALL",
            "DROP TABLE audit_logs",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        assert (
            conn.execute("SELECT event_type, actor FROM audit_logs ORDER BY id").fetchall() == rows
        )
