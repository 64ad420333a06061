"""The ``suspicious_activities`` view, on whichever database the run uses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit_app import services
from audit_app.models import AuditLog, SuspiciousActivity
from audit_app.tests.factories import failures

pytestmark = pytest.mark.django_db


def listed() -> dict[str, int]:
    return {row.actor or "": row.failed_attempts for row in SuspiciousActivity.objects.all()}


def test_four_failures_are_not_listed():
    failures("mallory", 4)
    assert listed() == {}


def test_five_failures_are_listed():
    failures("mallory", 5)
    assert listed() == {"mallory": 5}


def test_failures_older_than_an_hour_are_ignored():
    failures("mallory", 4)
    failures("mallory", 3, minutes_ago=61)
    assert listed() == {}
    failures("mallory", 1, minutes_ago=59)
    assert listed() == {"mallory": 5}


def test_successes_are_ignored():
    failures("mallory", 4)
    for _ in range(3):
        services.record("auth.login", "mallory", "admin", "login", success=True)
    assert listed() == {}


def test_rows_without_an_outcome_are_not_failures():
    failures("mallory", 4)
    AuditLog.objects.create(event_type="auth.login", actor="mallory", success=None)
    assert listed() == {}


def test_rows_written_with_the_database_clock_count():
    # created_at comes from the database default, as in production.
    for _ in range(5):
        services.record("secrets.read", "agent-x", "secret:db", "read", success=False)
    assert listed() == {"agent-x": 5}


def test_actors_are_sorted_by_failure_count():
    failures("few", 5)
    failures("many", 9)
    failures("middle", 7)
    rows = list(SuspiciousActivity.objects.all())
    assert [(r.actor, r.failed_attempts) for r in rows] == [("many", 9), ("middle", 7), ("few", 5)]


def test_last_attempt_is_the_newest_failure():
    failures("mallory", 4, minutes_ago=30)
    failures("mallory", 1, minutes_ago=2)
    row = SuspiciousActivity.objects.get()
    expected = timezone.now() - timedelta(minutes=2)
    assert abs(row.last_attempt - expected) < timedelta(seconds=5)


def test_failures_of_every_event_type_count_together():
    failures("mallory", 3)
    for _ in range(2):
        services.record("secrets.read", "mallory", "secret:x", "read", success=False)
    assert listed() == {"mallory": 5}
