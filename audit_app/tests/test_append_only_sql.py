"""On PostgreSQL a trigger refuses UPDATE and DELETE on audit_logs, whoever sends them."""

from __future__ import annotations

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
