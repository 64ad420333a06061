"""The site's side of messaging: recording status events, dead letters, replay, stream health.

The wire (stream names, the envelope) is ``foundation_client._envelope``: one definition for both
sides.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.http import HttpRequest

from audit_app import services as audit
from foundation_client._envelope import (
    AGENTS,
    DEAD_LETTERS,
    EVENTS,
    Envelope,
    MalformedMessage,
    as_text,
    event_fields,
    inbox,
    parse_stream_id,
)
from foundation_client._messaging import TRIM_STREAM, trim_arguments
from foundation_site.redis_client import get_redis as _get_redis
from messaging_app.models import MessageLog, RecordedEvent


def get_redis() -> Any:
    """Typed loosely: redis-py's stream replies are nested unions the code here unpacks."""
    return _get_redis()


logger = logging.getLogger("foundation.messaging")

RECORDER_GROUP = "recorder"


def _when(raw: str | None) -> datetime:
    try:
        return datetime.fromtimestamp(float(raw or ""), tz=UTC)
    except ValueError:
        return datetime.now(tz=UTC)


def parse_event(event_id: str, fields: dict[Any, Any]) -> list[dict[str, Any]]:
    """The ``message_logs`` column values one events-stream entry stands for (a batch entry
    stands for several messages)."""
    data = {as_text(k): as_text(v) for k, v in fields.items()}
    status = data.get("status", "")[:20] or "unknown"
    when = _when(data.get("at"))
    if "batch" in data:
        try:
            items = orjson.loads(data["batch"])
        except orjson.JSONDecodeError:
            logger.warning("skipped events entry %s: its batch is not JSON", event_id)
            return []
    else:
        items = [data]
    rows = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        payload = item.get("payload")
        if isinstance(payload, str):  # single events carry the payload as JSON text
            try:
                payload = orjson.loads(payload)
            except orjson.JSONDecodeError:
                payload = None
        attempt = str(item.get("attempt") or "")
        rows.append(
            {
                "event_id": event_id,
                "message_id": str(item.get("id") or item.get("message_id") or "")[:100] or None,
                "sender": str(item.get("sender") or "")[:100] or None,
                "receiver": str(item.get("receiver") or "")[:100] or None,
                "message_type": str(item.get("type") or "")[:50] or None,
                "payload": payload,
                "status": status,
                "error_message": data.get("error") or None,
                "correlation_id": str(item.get("correlation_id") or "")[:100] or None,
                "attempt": int(attempt) if attempt.isdigit() and len(attempt) < 10 else None,
                "created_at": when,
            }
        )
    return rows


def record(entries: list[tuple[Any, dict[Any, Any]]]) -> int:
    """Write the rows of a batch of events entries in one transaction. An entry recorded before
    adds nothing (idempotent); one that cannot be stored is logged and skipped, never retried
    forever. Returns how many rows were added."""
    with transaction.atomic():
        fresh = _first_time([as_text(entry_id) for entry_id, _ in entries])
        parsed = [
            (event_id, parse_event(event_id, fields))
            for entry_id, fields in entries
            if (event_id := as_text(entry_id)) in fresh
        ]
        rows = [row for _, batch in parsed for row in batch]
        if not rows:
            return 0
        try:
            with transaction.atomic():
                _write(rows)
            return len(rows)
        except DatabaseError:
            pass
        # Some entry holds what the database refuses (a NUL character, say): write the others.
        written = 0
        for event_id, batch in parsed:
            try:
                with transaction.atomic():
                    _write(batch)
                written += len(batch)
            except DatabaseError as exc:
                # The class and SQLSTATE only: the database's message quotes the row's data,
                # and a payload may hold a secret.
                cause = getattr(exc.__cause__, "sqlstate", None)
                logger.warning(
                    "skipped events entry %s: not recordable (%s, SQLSTATE %s)",
                    event_id,
                    type(exc).__name__,
                    cause,
                )
        return written


def _first_time(event_ids: list[str]) -> set[str]:
    """Add the entries to the ledger and return those that were not there already. A second
    recorder adding the same entry waits for the first's transaction, then finds it."""
    keys = dict.fromkeys(parse_stream_id(event_id) for event_id in event_ids)
    if not keys:
        return set()
    values = ", ".join(["(%s, %s)"] * len(keys))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {RecordedEvent._meta.db_table} (ms, seq) VALUES {values} "
            "ON CONFLICT DO NOTHING RETURNING ms, seq",
            [part for key in keys for part in key],
        )
        return {f"{ms}-{seq}" for ms, seq in cursor.fetchall()}


_COLUMNS = (
    "event_id",
    "message_id",
    "sender",
    "receiver",
    "message_type",
    "payload",
    "status",
    "error_message",
    "correlation_id",
    "attempt",
    "created_at",
)
_PAYLOAD = _COLUMNS.index("payload")


def _write(rows: list[dict[str, Any]]) -> None:
    if connection.vendor != "postgresql":
        MessageLog.objects.bulk_create([MessageLog(**row) for row in rows], batch_size=1000)
        return
    # COPY: a third of the database's time per row that INSERT costs, on a machine the recorder
    # shares with the agents it records.
    # psycopg's own errors (a NUL in text, found while formatting a row) become Django's.
    with (
        connection.wrap_database_errors,
        connection.cursor() as cursor,
        cursor.copy(f"COPY {MessageLog._meta.db_table} ({', '.join(_COLUMNS)}) FROM STDIN") as copy,
    ):
        for row in rows:
            values = [row[column] for column in _COLUMNS]
            if values[_PAYLOAD] is not None:
                values[_PAYLOAD] = orjson.dumps(values[_PAYLOAD]).decode()
            copy.write_row(values)


@dataclass
class Recorder:
    """Consumes the events stream in the group ``recorder`` and writes ``MessageLog`` rows.

    Entries are acknowledged only after their rows are committed, so a recorder that dies
    loses nothing: another (or the same, restarted) reclaims them, and the ledger
    (``RecordedEvent``) keeps the rows single.
    """

    consumer: str
    batch: int = 500
    block_ms: int = 1000
    reclaim_after_ms: int = 30_000
    # Ledger rows younger than this are kept whatever the group says: a recorder that stalled
    # (a paused VM, a starved process) may still hold an entry another has since recorded.
    ledger_keep_seconds: float = 600.0
    events_maxlen: int = 1_000_000
    trim_every: float = 30.0
    reclaim_every: float = 1.0  # how often dead recorders' entries are looked for
    _last_trim: float = 0.0
    _last_reclaim: float = 0.0
    _unsettled: bool = True  # entries of ours may be pending unacknowledged (at start, too)

    def __post_init__(self) -> None:
        self.redis = get_redis()
        self._trim = self.redis.register_script(TRIM_STREAM)
        try:
            self.redis.xgroup_create(EVENTS, RECORDER_GROUP, id="0", mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def step(self) -> int:
        """One batch: reclaimed entries of dead recorders first, then new ones. Returns how
        many events entries it recorded."""
        entries: list[tuple[Any, dict[Any, Any]]] = []
        if time.monotonic() - self._last_reclaim >= self.reclaim_every:
            self._last_reclaim = time.monotonic()
            _, claimed, _ = self.redis.xautoclaim(
                EVENTS,
                RECORDER_GROUP,
                self.consumer,
                self.reclaim_after_ms,
                "0-0",
                count=self.batch,
            )
            entries = [(entry_id, fields) for entry_id, fields in claimed if fields]
        if not entries and self._unsettled:
            # Our own pending entries: the last step failed between reading and acknowledging.
            mine = self.redis.xreadgroup(
                RECORDER_GROUP, self.consumer, {EVENTS: "0"}, count=self.batch
            )
            entries = [(i, f) for _, batch in mine or [] for i, f in batch if f]
            self._unsettled = bool(entries)
        if not entries:
            response = self.redis.xreadgroup(
                RECORDER_GROUP,
                self.consumer,
                {EVENTS: ">"},
                count=self.batch,
                block=self.block_ms or None,
            )
            entries = [(i, f) for _, batch in response or [] for i, f in batch]
        if not entries:
            return 0
        self._unsettled = True
        record(entries)
        self.redis.xack(EVENTS, RECORDER_GROUP, *[entry_id for entry_id, _ in entries])
        self._unsettled = False
        self._maybe_trim()
        return len(entries)

    def _maybe_trim(self) -> None:
        """Keep the events stream bounded, never past an entry some group still needs; and the
        ledger, behind the first entry a recorder could still be given again."""
        now = time.monotonic()
        if now - self._last_trim < self.trim_every:
            return
        self._last_trim = now
        _, first_needed = self._trim(keys=[EVENTS], args=trim_arguments(self.events_maxlen, None))
        self.prune_ledger(as_text(first_needed))

    def prune_ledger(self, first_needed: str | None = None) -> int:
        """Forget the ledger entries no recorder can be given again: those before the group's
        oldest pending entry and its first entry not yet delivered (``first_needed``, read by
        the trim script when not given), and older than ``ledger_keep_seconds``."""
        if first_needed is None:
            _, raw = self._trim(keys=[EVENTS], args=trim_arguments(None, None))
            first_needed = as_text(raw)
        if not first_needed:
            return 0  # no recorder group (yet)
        bound = min(
            parse_stream_id(first_needed),
            (int((time.time() - self.ledger_keep_seconds) * 1000), 0),
        )
        deleted, _ = RecordedEvent.objects.filter(
            Q(ms__lt=bound[0]) | Q(ms=bound[0], seq__lt=bound[1])
        ).delete()
        return deleted


# --- dead letters and replay --------------------------------------------------------------------
@dataclass(frozen=True)
class DeadLetter:
    entry_id: str
    reason: str
    receiver: str
    sender: str
    message_type: str
    message_id: str
    attempt: str
    dead_at: datetime
    payload_preview: str
    replayable: bool


def dead_letters(count: int = 200, receiver: str | None = None) -> list[DeadLetter]:
    """Newest first."""
    letters = []
    for entry_id, fields in get_redis().xrevrange(DEAD_LETTERS, count=count):
        data = {as_text(k): as_text(v) for k, v in fields.items()}
        target = data.get("receiver") or data.get("stream", "").removeprefix("foundation:msg:")
        if receiver and target != receiver:
            continue
        letters.append(
            DeadLetter(
                entry_id=as_text(entry_id),
                reason=data.get("reason", ""),
                receiver=target,
                sender=data.get("sender", ""),
                message_type=data.get("type", ""),
                message_id=data.get("id", ""),
                attempt=data.get("attempt", ""),
                dead_at=_when(data.get("dead_at")),
                payload_preview=(data.get("payload") or data.get("raw") or "")[:200],
                replayable="id" in data,
            )
        )
    return letters


@dataclass
class ReplayReport:
    replayed: list[str]
    skipped: list[str]


def replay_dead_letters(
    entry_ids: list[str], *, actor: object, request: HttpRequest | None = None
) -> ReplayReport:
    """Put dead letters back into their receivers' inboxes (attempt 1, same message id, so a
    de-duplicating handler still recognises them), and remove them from the dead letters.

    Each one in one transaction: delivered once, logged as ``replayed``, audited.
    """
    redis = get_redis()
    report = ReplayReport([], [])
    for entry_id in entry_ids:
        found = redis.xrange(DEAD_LETTERS, entry_id, entry_id)
        if not found:
            report.skipped.append(entry_id)
            continue
        try:
            # A dead letter holds the envelope's members beside its own (reason, stream, ...).
            envelope = Envelope.from_fields(found[0][1])
        except MalformedMessage:
            report.skipped.append(entry_id)  # a foreign entry: nothing to deliver
            continue
        fresh = replace(envelope, attempt=1)
        pipe = redis.pipeline(transaction=True)
        pipe.xadd(inbox(fresh.receiver), fresh.to_entry())
        pipe.xdel(DEAD_LETTERS, entry_id)
        pipe.xadd(EVENTS, event_fields("replayed", fresh, include_payload=True))
        pipe.execute()
        report.replayed.append(entry_id)
    audit.record(
        "messaging.replay",
        actor,
        "dead_letters",
        "replay",
        not report.skipped,
        request,
        None if not report.skipped else f"{len(report.skipped)} entries not replayable",
        replayed=report.replayed,
        skipped=report.skipped,
    )
    return report


def replay_range(
    receiver: str,
    start: datetime,
    end: datetime,
    *,
    actor: object,
    request: HttpRequest | None = None,
) -> int:
    """Send again every message sent to ``receiver`` between ``start`` and ``end`` (from the
    message log), with their original ids; returns how many."""
    if end <= start:
        raise ValueError("the end of the range must be after its start")
    sent = (
        MessageLog.objects.filter(
            receiver=receiver,
            status=MessageLog.Status.SENT,
            created_at__gte=start,
            created_at__lt=end,
        )
        .exclude(message_id=None)
        .order_by("created_at", "id")
    )
    redis = get_redis()
    count, skipped, finished = 0, [], False
    try:
        for row in sent.iterator():
            envelope = Envelope(
                sender=row.sender or "?",
                receiver=receiver,
                type=row.message_type or "?",
                payload=row.payload,
                id=row.message_id or "",
                correlation_id=row.correlation_id,
            )
            try:
                entry = envelope.to_entry()
            except TypeError:  # a logged payload JSON holds but the wire cannot (a huge integer)
                skipped.append(envelope.id)
                continue
            pipe = redis.pipeline(transaction=True)
            pipe.xadd(inbox(receiver), entry)
            pipe.xadd(EVENTS, event_fields("replayed", envelope, include_payload=True))
            pipe.execute()
            count += 1
        finished = True
    finally:
        # Audited whatever happened: a replay stopped half-way (Redis gone) says how far it got.
        audit.record(
            "messaging.replay",
            actor,
            f"agent:{receiver}",
            "replay_range",
            finished and not skipped,
            request,
            "stopped by an error"
            if not finished
            else (f"{len(skipped)} message(s) not replayable" if skipped else None),
            start=start.isoformat(),
            end=end.isoformat(),
            messages=count,
            skipped=skipped,
        )
    return count


# --- stream health ------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupHealth:
    name: str
    pending: int
    oldest_pending_seconds: float | None
    consumers: list[tuple[str, int, float]]  # name, pending, idle seconds
    lag: int | None


@dataclass(frozen=True)
class StreamHealth:
    stream: str
    length: int
    groups: list[GroupHealth]


def stream_health() -> list[StreamHealth]:
    redis = get_redis()
    names = sorted(as_text(a) for a in redis.smembers(AGENTS))
    streams = [inbox(n) for n in names] + [EVENTS, DEAD_LETTERS]
    report = []
    for stream in streams:
        if not redis.exists(stream):
            continue
        groups = []
        for info in redis.xinfo_groups(stream):
            group = as_text(info["name"])
            oldest = None
            if info["pending"]:
                first = redis.xpending_range(stream, group, "-", "+", 1)
                if first:
                    oldest = first[0]["time_since_delivered"] / 1000
            consumers = [
                (as_text(c["name"]), int(c["pending"]), c["idle"] / 1000)
                for c in redis.xinfo_consumers(stream, group)
            ]
            groups.append(
                GroupHealth(group, int(info["pending"]), oldest, consumers, info.get("lag"))
            )
        report.append(StreamHealth(stream, int(redis.xlen(stream)), groups))
    return report
