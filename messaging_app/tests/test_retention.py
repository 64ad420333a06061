"""Retention of the message log: old rows go in batches, new ones stay, every run is summed up in
the audit log; the cron job and the command run it."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit_app.models import AuditLog
from messaging_app import jobs, retention
from messaging_app.models import MessageLog

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _thirty_days(settings):
    settings.MESSAGE_LOG_RETENTION_DAYS = 30


def rows(*ages_in_days: float) -> list[MessageLog]:
    now = timezone.now()
    return MessageLog.objects.bulk_create(
        MessageLog(message_id=f"m{i}", status="sent", created_at=now - timedelta(days=age))
        for i, age in enumerate(ages_in_days)
    )


def kept() -> set[str | None]:
    return set(MessageLog.objects.values_list("message_id", flat=True))


def test_rows_past_retention_go_and_newer_ones_stay():
    rows(45, 31, 30.01, 29.99, 1, 0)
    report = retention.purge()
    assert report.deleted == 3
    assert report.finished
    assert kept() == {"m3", "m4", "m5"}


def test_it_deletes_in_batches_oldest_first():
    rows(40, 39, 38, 37, 36, 1)
    first = retention.purge(batch=2, max_seconds=0)  # one batch, then out of time
    assert (first.deleted, first.batches, first.finished) == (2, 1, False)
    assert kept() == {"m2", "m3", "m4", "m5"}
    with CaptureQueriesContext(connection) as queries:
        rest = retention.purge(batch=2)
    assert (rest.deleted, rest.batches, rest.finished) == (3, 2, True)
    assert len([q for q in queries if "DELETE FROM" in q["sql"]]) == 2  # 2 rows, then 1: done
    assert kept() == {"m5"}


def test_rows_sharing_one_time_beyond_a_batch_all_go():
    # The recorder gives every row of one events entry (a batch of messages) the same time.
    when = timezone.now() - timedelta(days=40)
    MessageLog.objects.bulk_create(
        MessageLog(message_id=f"same{i}", status="sent", created_at=when) for i in range(7)
    )
    rows(0)
    assert retention.purge(batch=3).deleted == 7
    assert kept() == {"m0"}


def test_a_run_stops_at_its_time_budget_and_the_next_goes_on():
    rows(40, 39, 38, 37, 1)
    first = retention.purge(batch=2, max_seconds=0)
    assert (first.deleted, first.finished) == (2, False)
    assert retention.purge(batch=2).finished
    assert kept() == {"m4"}


def test_days_override_the_setting():
    rows(10, 3)
    assert retention.purge(days=5).deleted == 1
    assert kept() == {"m1"}


def test_each_run_that_deletes_is_audited_once_in_summary():
    rows(40, 39, 38, 1)
    retention.purge(batch=2, actor="tester")
    entry = AuditLog.objects.get(event_type="messaging.retention")
    assert (entry.actor, entry.resource, entry.action, entry.success) == (
        "tester",
        "message_logs",
        "purge",
        True,
    )
    assert entry.metadata["deleted"] == 3
    assert entry.metadata["batches"] == 2
    assert entry.metadata["finished"] is True
    retention.purge()  # nothing left to delete: nothing to say
    assert AuditLog.objects.filter(event_type="messaging.retention").count() == 1


def test_a_run_stopped_by_an_error_says_how_far_it_got(monkeypatch):
    rows(40, 39, 38, 1)
    real = retention._delete_batch
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise DatabaseError("connection lost")
        return real(*args, **kwargs)

    monkeypatch.setattr(retention, "_delete_batch", failing)
    with pytest.raises(DatabaseError):
        retention.purge(batch=2)
    entry = AuditLog.objects.get(event_type="messaging.retention")
    assert entry.success is False
    assert entry.metadata["deleted"] == 2
    assert "connection lost" in entry.error_message


def test_the_command_purges_and_says_what_it_did():
    rows(40, 1)
    out = StringIO()
    call_command("purge_message_log", "--batch", "10", stdout=out)
    assert re.match(r"deleted 1 rows older than \S+ in 1 batches$", out.getvalue().strip())
    assert AuditLog.objects.get(event_type="messaging.retention").actor == (
        "manage.py purge_message_log"
    )
    with pytest.raises(CommandError, match="--days"):
        call_command("purge_message_log", "--days", "0")


def test_the_job_purges_within_its_budget():
    rows(40, 1)
    assert jobs.purge_message_log() == {"deleted": 1, "batches": 1, "finished": True}
    assert AuditLog.objects.get(event_type="messaging.retention").actor == "rq-cron"
