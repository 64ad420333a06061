"""Retention of the message log: rows older than ``MESSAGE_LOG_RETENTION_DAYS`` are deleted.

Under load the recorder adds tens of thousands of rows a second, so the table is bounded by time,
not left to grow. Deletion goes oldest first, in batches of a few thousand rows, each its own
short transaction: no lock is held longer than one batch (tens of milliseconds), and the
recorder, which only inserts, and the admin, which only reads, go on meanwhile. Each batch starts
where the last one ended (keyset on ``idx_messages_created``), so a run does not walk again over
the index entries of rows it has already deleted, which stay in the index until VACUUM removes
them. On PostgreSQL a batch is one statement: find, delete and report in one round trip. One
audit row sums up each run that deleted something or failed.

Run by RQ's cron scheduler (``foundation_site/cron.py``) and by ``manage.py purge_message_log``.
Call it outside a transaction: inside one, the batches would be a single long one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from audit_app import services as audit
from messaging_app.models import MessageLog

logger = logging.getLogger("foundation.messaging")

BATCH = 5_000


@dataclass(frozen=True)
class PurgeReport:
    cutoff: datetime
    deleted: int
    batches: int
    finished: bool  # False when the time budget ran out with older rows left


def cutoff(days: int | None = None) -> datetime:
    """The moment before which rows go: ``days`` (default ``MESSAGE_LOG_RETENTION_DAYS``) ago."""
    keep = settings.MESSAGE_LOG_RETENTION_DAYS if days is None else days
    return timezone.now() - timedelta(days=keep)


def purge(
    *,
    days: int | None = None,
    batch: int = BATCH,
    max_seconds: float | None = None,
    actor: object = "message-log-retention",
) -> PurgeReport:
    """Delete the message-log rows older than ``days`` ago, ``batch`` rows per transaction, until
    none is left or ``max_seconds`` have passed (the rest waits for the next run)."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    before = cutoff(days)
    started = time.monotonic()
    deleted = batches = 0
    finished = False
    floor: datetime | None = None
    error: BaseException | None = None
    try:
        while True:
            found, count, floor = _delete_batch(before, floor, batch)
            deleted += count
            batches += 1 if found else 0
            if found < batch:
                finished = True
                break
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                break
    except BaseException as exc:
        error = exc
        raise
    finally:
        if deleted or error is not None:
            # Audited whatever happened: a run stopped half-way says how far it got.
            audit.record(
                "messaging.retention",
                actor,
                "message_logs",
                "purge",
                success=error is None,
                error=error,
                cutoff=before.isoformat(),
                deleted=deleted,
                batches=batches,
                finished=finished,
            )
        logger.info(
            "message log retention: %d rows older than %s deleted in %d batches%s",
            deleted,
            before.isoformat(),
            batches,
            "" if finished else " (more left)",
        )
    return PurgeReport(cutoff=before, deleted=deleted, batches=batches, finished=finished)


def _delete_batch(
    before: datetime, floor: datetime | None, size: int
) -> tuple[int, int, datetime | None]:
    """Delete the oldest ``size`` rows older than ``before`` (and not older than ``floor``, where
    the last batch ended). Returns how many were found, how many deleted (fewer when another
    run got there first) and where this batch ended."""
    if connection.vendor == "postgresql":
        return _delete_batch_postgresql(before, floor, size)
    rows = MessageLog.objects.filter(created_at__lt=before)
    if floor is not None:
        rows = rows.filter(created_at__gte=floor)
    found = list(rows.order_by("created_at", "id").values_list("id", "created_at")[:size])
    if not found:
        return 0, 0, floor
    # One statement, so one short transaction of its own (in autocommit, as outside a request).
    count, _ = MessageLog.objects.filter(id__in=[row_id for row_id, _ in found]).delete()
    return len(found), count, found[-1][1]


# The same in one statement and one round trip: the ids never travel to Python and back, which
# made the batch several times slower than PostgreSQL's own work (docs/measurements.md).
_DELETE_BATCH = """
WITH batch AS (
    SELECT id, created_at FROM message_logs
    WHERE created_at < %(before)s
      AND created_at >= COALESCE(%(floor)s::timestamptz, '-infinity')
    ORDER BY created_at, id
    LIMIT %(size)s
), gone AS (
    DELETE FROM message_logs WHERE id IN (SELECT id FROM batch) RETURNING 1
)
SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM gone),
       (SELECT max(created_at) FROM batch)
"""


def _delete_batch_postgresql(
    before: datetime, floor: datetime | None, size: int
) -> tuple[int, int, datetime | None]:
    with connection.cursor() as cursor:
        cursor.execute(_DELETE_BATCH, {"before": before, "floor": floor, "size": size})
        found, deleted, last = cursor.fetchone()
    return found, deleted, last or floor
