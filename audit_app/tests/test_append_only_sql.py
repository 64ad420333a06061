"""On PostgreSQL a trigger refuses UPDATE and DELETE on audit_logs, whoever sends them."""

from __future__ import annotations

from io import StringIO

import pytest
from django.db import DatabaseError, connection, transaction

from audit_app import services
from audit_app.models import AuditLog

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger exists on PostgreSQL; `make test` runs it there")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_logs SET actor = 'someone-else'",
        "UPDATE audit_logs SET success = TRUE WHERE success = FALSE",
        "DELETE FROM audit_logs",
        "DELETE FROM audit_logs WHERE actor = 'mallory'",
    ],
)
def test_sql_that_changes_or_removes_rows_is_rejected(statement):
    services.record("auth.login", "mallory", success=False)
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    row = AuditLog.objects.get()
    assert (row.actor, row.success) == ("mallory", False)


def test_inserting_is_still_allowed():
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_logs (event_type, actor, success) VALUES ('x.y', 'raw', TRUE)"
        )
    assert AuditLog.objects.get().actor == "raw"


def test_truncate_is_refused_to_a_role_that_does_not_own_the_table():
    """Finding 5 of the review: TRUNCATE went past the row trigger. The statement trigger
    refuses it to any role outside the owner's, even one given the TRUNCATE privilege."""
    services.record("auth.login", "mallory", success=False)
    with connection.cursor() as cursor:
        cursor.execute("CREATE ROLE audit_truncater NOLOGIN")
        cursor.execute("GRANT TRUNCATE, SELECT ON audit_logs TO audit_truncater")
        cursor.execute("SET ROLE audit_truncater")
    try:
        with (
            pytest.raises(DatabaseError, match="append-only: TRUNCATE"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("TRUNCATE audit_logs")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
            cursor.execute("REVOKE ALL ON audit_logs FROM audit_truncater")
            cursor.execute("DROP ROLE audit_truncater")
    assert AuditLog.objects.get().actor == "mallory"


class _RollBack(Exception):
    """Leaves a statement that worked without effect."""


@pytest.mark.parametrize(
    ("statement", "refused"),
    [
        ("INSERT INTO audit_logs (event_type, actor) VALUES ('x.y', 'site')", False),
        ("SELECT count(*) FROM audit_logs", False),
        ("UPDATE secrets_metadata SET description = 'd'", False),
        ("UPDATE audit_logs SET actor = 'someone-else'", True),
        ("DELETE FROM audit_logs", True),
        ("TRUNCATE audit_logs", True),
        ("DROP TRIGGER audit_logs_append_only ON audit_logs", True),
        ("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_no_truncate", True),
        ("DROP TABLE audit_logs", True),
    ],
)
def test_the_sites_role_may_only_read_and_append_to_the_audit_log(statement, refused):
    """The role the site runs as, given its privileges by ``grant_site_role``."""
    from django.core.management import call_command

    services.record("auth.login", "mallory", success=False)
    with connection.cursor() as cursor:
        cursor.execute("CREATE ROLE site_role_test NOLOGIN")
    try:
        call_command("grant_site_role", "site_role_test", stdout=StringIO())
        with connection.cursor() as cursor:
            cursor.execute("SET ROLE site_role_test")
        outcome: Exception | None = None
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement)
                raise _RollBack
        except DatabaseError as exc:
            outcome = exc
        except _RollBack:
            pass
        if refused:
            assert outcome is not None, f"{statement} was allowed"
        else:
            assert outcome is None, f"{statement}: {outcome}"
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
            cursor.execute("DROP OWNED BY site_role_test")
            cursor.execute("DROP ROLE site_role_test")
    assert AuditLog.objects.filter(actor="mallory").count() == 1
