"""The recorder: every message's statuses, read from the wire, as ``message_logs`` rows.

What it reads, per receiver ``b`` (see ``foundation_client.protocol``):

- ``sent`` from the inboxes ``fdn:in:<a>:{b}`` themselves: only a can append there, so the
  sender of each row is the one the key names, whatever the envelope claims;
- ``delivered``, ``failed``, ``dead`` from ``fdn:{b}:events``: b's own word about its inbox;
- ``replayed`` from ``fdn:site:{b}:events``, which only the site writes.

It reads with XREAD from a cursor per stream (``RecorderCursor``) that advances in the same
transaction as the rows, so each row is written exactly once, whatever dies when. No consumer
group: an agent may consume its own inboxes, and a group there could be acknowledged or claimed
by it. Several recorders share the streams by locking cursor rows (SKIP LOCKED). A database error
that may pass (the connection, a restart) rolls the step back and it is tried again; an entry
the database refuses for good (a NUL character, say) is logged and skipped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    connection,
    transaction,
)
from psycopg.types.json import set_json_dumps
from redis.exceptions import RedisError

from foundation_client import MalformedMessage
from foundation_client.protocol import (
    TRIM_STREAM,
    Envelope,
    StatusEvent,
    events,
    inbox,
    inbox_sender,
    site_events,
    trim_arguments,
)
from foundation_client.util import as_text
from foundation_core.redis_client import get_wire
from messaging_app.models import MessageLog, RecorderCursor
from messaging_app.services.agents import wire_agents

logger = logging.getLogger("foundation.messaging.recorder")

#: The database refuses these for good: the entry is skipped. Anything else rolls back and is
#: tried again.
PERMANENT = (DataError, IntegrityError)

#: Which ``message_logs`` column each member fills (members not listed are not logged).
LOG_COLUMNS: dict[str, str] = {
    "id": "message_id",
    "sender": "sender",
    "receiver": "receiver",
    "type": "message_type",
    "payload": "payload",
    "attempt": "attempt",
    "correlation_id": "correlation_id",
    "traceparent": "traceparent",
}


def parse_stream_id(raw: str | bytes) -> tuple[int, int]:
    """A stream entry id ("1764161234567-3") as (milliseconds, sequence), for comparing."""
    ms, _, seq = as_text(raw).partition("-")
    return int(ms), int(seq or 0)


_COLUMNS = ("event_id", *LOG_COLUMNS.values(), "status", "error_message", "created_at")
_LIMITS: dict[str, int] = {
    f.name: width
    for f in MessageLog._meta.concrete_fields
    if (width := getattr(f, "max_length", None)) is not None
}


@dataclass(frozen=True)
class Source:
    """One stream the recorder reads, and what its entries are."""

    key: str
    receiver: str
    kind: str  # "inbox", "events" (the receiver's), "site"
    sender: str | None = None  # of an inbox: the agent its key names


def sources(agents: list[str]) -> list[Source]:
    out = []
    for receiver in agents:
        out.append(Source(events(receiver), receiver, "events"))
        out.append(Source(site_events(receiver), receiver, "site"))
        out.extend(Source(inbox(receiver, sender), receiver, "inbox", sender) for sender in agents)
    return out


#: A row: the values of ``_COLUMNS`` in order (``payload`` any JSON value or None,
#: ``created_at`` an aware datetime). A tuple, not a model or a dict: one is made for every
#: message and every status, and making them is the recorder's own largest cost.
Row = tuple[Any, ...]
if _COLUMNS != (
    "event_id",
    "message_id",
    "sender",
    "receiver",
    "message_type",
    "payload",
    "attempt",
    "correlation_id",
    "traceparent",
    "status",
    "error_message",
    "created_at",
) or tuple(LOG_COLUMNS) != (
    "id",
    "sender",
    "receiver",
    "type",
    "payload",
    "attempt",
    "correlation_id",
    "traceparent",
):  # _row and _COPY_TYPES spell them out, in this order, for speed
    raise AssertionError("LOG_COLUMNS changed: update _row and _COPY_TYPES")
_W_ID, _W_NAME, _W_TYPE, _W_CORRELATION, _W_TRACE = (
    _LIMITS[c] for c in ("message_id", "sender", "message_type", "correlation_id", "traceparent")
)
if _LIMITS["receiver"] != _W_NAME:
    raise AssertionError("sender and receiver are the same kind of column")
#: PostgreSQL's types of ``_COLUMNS``, for a binary COPY.
_COPY_TYPES = (
    *["varchar"] * 5,
    "jsonb",
    "int4",
    "varchar",
    "varchar",
    "varchar",
    "text",
    "timestamptz",
)


def _text(value: Any, width: int) -> str | None:
    """A text column's value: text cut to the column's width; "" and None are no value."""
    if value is None:
        return None
    text = value if type(value) is str else str(value)
    return text[:width] or None


def _row(
    item: dict[str, Any],
    *,
    status: str,
    when: datetime,
    error: str | None,
    event_id: str,
    receiver: str | None = None,
) -> Row:
    """One ``message_logs`` row from an envelope (or an event's head of one); ``receiver``,
    when given, is what the stream proves and replaces what the item says. Each member is
    tested for the usual shape inline, and made to fit by ``_text`` only when it is not."""
    get = item.get
    message_id = get("id")
    if type(message_id) is not str or not 0 < len(message_id) <= _W_ID:
        message_id = _text(message_id, _W_ID)
    sender = get("sender")
    if type(sender) is not str or not 0 < len(sender) <= _W_NAME:
        sender = _text(sender, _W_NAME)
    if receiver is None:
        receiver = get("receiver")
        if type(receiver) is not str or not 0 < len(receiver) <= _W_NAME:
            receiver = _text(receiver, _W_NAME)
    message_type = get("type")
    if type(message_type) is not str or not 0 < len(message_type) <= _W_TYPE:
        message_type = _text(message_type, _W_TYPE)
    correlation_id = get("correlation_id")
    if correlation_id is not None and (
        type(correlation_id) is not str or not 0 < len(correlation_id) <= _W_CORRELATION
    ):
        correlation_id = _text(correlation_id, _W_CORRELATION)
    traceparent = get("traceparent")
    if traceparent is not None and (
        type(traceparent) is not str or not 0 < len(traceparent) <= _W_TRACE
    ):
        traceparent = _text(traceparent, _W_TRACE)
    attempt = get("attempt")
    if not (type(attempt) is int and 0 < attempt < 2**31):
        attempt = None
    return (
        event_id,
        message_id,
        sender,
        receiver,
        message_type,
        get("payload"),
        attempt,
        correlation_id,
        traceparent,
        status,
        error,
        when,
    )


def _json_entry(fields: dict[Any, Any]) -> Any:
    raw = fields.get(b"e", fields.get("e"))
    if raw is None or len(fields) != 1:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def rows_of(source: Source, entry_id: Any, fields: dict[Any, Any]) -> list[Row]:
    """The ``message_logs`` rows one stream entry stands for (a batch event, several)."""
    event_id = as_text(entry_id)
    if source.kind == "inbox":
        # The entry id's time, which the sender may choose (XADD with an id): never later than
        # now.
        when = datetime.fromtimestamp(min(parse_stream_id(event_id)[0] / 1000, time.time()), tz=UTC)
        sender = source.sender or inbox_sender(source.key)
        # Fast path: an envelope as the client writes it, from the sender the key names (a row
        # for every message sent: the recorder's largest cost). Anything else is parsed member
        # by member below, to say what is wrong.
        data = _json_entry(fields)
        if (
            type(data) is dict
            and data.get("sender") == sender
            and data.get("receiver") == source.receiver
            and type(data.get("id")) is str
        ):
            return [_row(data, status="sent", when=when, error=None, event_id=event_id)]
        try:
            envelope = Envelope.from_entry(fields)
        except MalformedMessage as exc:
            item: dict[str, Any] = {"sender": sender, "receiver": source.receiver}
            return [
                _row(item, status="sent", when=when, error=f"malformed: {exc}", event_id=event_id)
            ]
        item = {**envelope.head(), "payload": envelope.payload}
        error = None
        if envelope.sender != sender:
            error = f"forged sender: the envelope claimed {envelope.sender!r}"
        item["sender"], item["receiver"] = sender, source.receiver
        return [_row(item, status="sent", when=when, error=error, event_id=event_id)]
    try:
        event = StatusEvent.decode(fields)
    except MalformedMessage as exc:
        logger.warning("skipped %s entry %s: %s", source.key, event_id, exc)
        return []
    if source.kind == "events" and event.status not in ("delivered", "failed", "dead"):
        logger.warning(
            "skipped %s entry %s: an agent reports no %r", source.key, event_id, event.status
        )
        return []
    if source.kind == "site" and event.status != "replayed":
        return []
    when = datetime.fromtimestamp(event.at, tz=UTC)
    # What happened in b's inbox is b's word about b: the receiver is b.
    return [
        _row(
            item,
            status=event.status,
            when=when,
            error=event.error,
            event_id=event_id,
            receiver=source.receiver,
        )
        for item in event.items
    ]


def _write(rows: list[Row]) -> None:
    if connection.vendor != "postgresql":
        MessageLog.objects.bulk_create(
            [MessageLog(**dict(zip(_COLUMNS, row, strict=True))) for row in rows],
            batch_size=1000,
        )
        return
    # COPY: a fraction of the database's time per row that INSERT costs (docs/measurements.md),
    # on a machine the recorder
    # shares with the agents it records; binary, so that psycopg's C dumpers write each value
    # as PostgreSQL keeps it (a third less of the recorder's time than text). What PostgreSQL
    # refuses (a NUL in text) is a DataError, as Django's.
    with (
        connection.wrap_database_errors,
        connection.cursor() as cursor,
        cursor.copy(
            f"COPY {MessageLog._meta.db_table} ({', '.join(_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        set_json_dumps(orjson.dumps, copy.cursor)
        copy.set_types(_COPY_TYPES)
        for row in rows:
            copy.write_row(row)


def _rows_or_none(source: Source, entry_id: Any, fields: dict[Any, Any]) -> list[Row]:
    """``rows_of``, and an entry it cannot make rows of (whatever an agent wrote) logged and
    skipped: one entry must never stop the recorder for everyone."""
    try:
        return rows_of(source, entry_id, fields)
    except Exception as exc:
        logger.warning("skipped %s entry %s: %s", source.key, as_text(entry_id), type(exc).__name__)
        return []


def record_entries(batches: list[tuple[Source, list[tuple[Any, dict[Any, Any]]]]]) -> int:
    """Write the rows of these entries (inside the caller's transaction). An entry the database
    refuses for good is logged and skipped; any other database error propagates, so that the
    caller's transaction, cursors included, rolls back and is tried again. Returns rows added."""
    parsed = [
        (source, as_text(entry_id), _rows_or_none(source, entry_id, fields))
        for source, entries in batches
        for entry_id, fields in entries
    ]
    rows = [row for _, _, entry_rows in parsed for row in entry_rows]
    if not rows:
        return 0
    try:
        with transaction.atomic():
            _write(rows)
        return len(rows)
    except PERMANENT:
        pass
    # Some entry holds what the database refuses: write the others, one entry at a time.
    written = 0
    for source, event_id, entry_rows in parsed:
        if not entry_rows:
            continue
        try:
            with transaction.atomic():
                _write(entry_rows)
            written += len(entry_rows)
        except PERMANENT as exc:
            # The class and SQLSTATE only: the database's message quotes the row's data,
            # and a payload may hold a secret.
            logger.warning(
                "skipped %s entry %s: not recordable (%s, SQLSTATE %s)",
                source.key,
                event_id,
                type(exc).__name__,
                getattr(exc.__cause__, "sqlstate", None),
            )
    return written


@dataclass
class Recorder:
    """Reads every agent's streams from its cursors and writes ``MessageLog`` rows."""

    batch: int = 500  # inbox entries per stream a round
    #: Events entries per stream a round: each carries a batch of a consumer's messages.
    events_batch: int = 10
    idle_sleep: float = 0.05  # seconds between polls when nothing came, at first
    idle_sleep_max: float = 0.5
    #: Inbox retention: entries beyond this many, recorded and acknowledged, are trimmed.
    inbox_maxlen: int = 100_000
    trim_every: float = 30.0
    refresh_every: float = 5.0  # how often the list of agents is read again
    _sources: list[Source] = field(default_factory=list)
    _last_refresh: float = 0.0
    _last_trim: float = 0.0

    def __post_init__(self) -> None:
        self.redis = get_wire()
        self._trim = self.redis.register_script(TRIM_STREAM)

    def refresh(self) -> None:
        from agents_app.wire import load_scripts

        self._last_refresh = time.monotonic()
        load_scripts()  # a Redis that restarted has them again within ``refresh_every``
        known = {source.key for source in self._sources}
        self._sources = sources(wire_agents())
        # Cursors for new streams only: N² of them for N agents, every few seconds otherwise.
        RecorderCursor.objects.bulk_create(
            [RecorderCursor(stream=s.key) for s in self._sources if s.key not in known],
            ignore_conflicts=True,
        )

    def step(self) -> int:
        """One round over every stream: read what follows each cursor, write the rows, move the
        cursors, in one transaction. Returns how many entries it read (0: nothing new)."""
        if time.monotonic() - self._last_refresh >= self.refresh_every or not self._sources:
            self.refresh()
        by_key = {s.key: s for s in self._sources}
        try:
            read = self._step(by_key)
        except DatabaseError:
            # The connection may be gone: a new one next time (not inside a caller's
            # transaction, which owns the connection).
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()
            raise
        self._maybe_trim()
        return read

    def _step(self, by_key: dict[str, Source]) -> int:
        with transaction.atomic():
            cursors = {
                c.stream: c
                for c in RecorderCursor.objects.select_for_update(skip_locked=True).filter(
                    stream__in=list(by_key)
                )
            }
            if not cursors:
                return 0
            # Per receiver (its keys share a slot), one XREAD of its inboxes and one of its
            # events, whose entries each stand for up to a consumer's batch of messages: a
            # round's rows stay near ``batch`` per stream. Pipelined: one round trip.
            groups: dict[tuple[str, bool], dict[str, str]] = {}
            for key, cursor in cursors.items():
                source = by_key[key]
                groups.setdefault((source.receiver, source.kind == "inbox"), {})[key] = (
                    cursor.last_id
                )
            pipe = self.redis.pipeline(transaction=False)
            for (_, inboxes), streams in groups.items():
                pipe.xread(streams, count=self.batch if inboxes else self.events_batch)
            replies = pipe.execute()
            batches = [
                (by_key[as_text(key)], entries)
                for reply in replies
                for key, entries in reply or []
                if entries
            ]
            if not batches:
                return 0
            record_entries(batches)
            moved = []
            for source, entries in batches:
                cursor = cursors[source.key]
                cursor.last_id = as_text(entries[-1][0])
                moved.append(cursor)
            RecorderCursor.objects.bulk_update(moved, ["last_id"])
            return sum(len(entries) for _, entries in batches)

    def run_until(self, stopping: Any, *, once: bool = False) -> int:
        """Record until ``stopping()`` (or, with ``once``, until a round finds nothing). Never
        crash-loops: a failed round is logged and tried again after a growing pause, its
        entries still after the cursors. Idle, it polls less and less often (up to
        ``idle_sleep_max``): each poll reads every inbox of every agent."""
        total, delay, idle = 0, 0.5, self.idle_sleep
        while not stopping():
            try:
                read = self.step()
            except Exception:  # the process edge: logged, retried, never fatal
                logger.exception("recording failed; retrying in %.1fs", delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 0.5
            total += read
            if read:
                idle = self.idle_sleep
            elif once:
                break
            else:
                time.sleep(idle)
                idle = min(idle * 2, self.idle_sleep_max)
        return total

    def _maybe_trim(self) -> None:
        """Bound what has been recorded: inboxes to ``inbox_maxlen`` (never past an entry the
        receiver's group still needs, nor past the cursor), events up to the cursor."""
        now = time.monotonic()
        if now - self._last_trim < self.trim_every:
            return
        self._last_trim = now
        self.trim()

    def trim(self) -> int:
        removed = 0
        cursors = dict(
            RecorderCursor.objects.filter(stream__in=[s.key for s in self._sources]).values_list(
                "stream", "last_id"
            )
        )
        for source in self._sources:
            cursor = cursors.get(source.key, "0-0")
            if cursor == "0-0":
                continue
            try:
                if source.kind == "inbox":
                    count, _ = self._trim(
                        keys=[source.key],
                        args=trim_arguments(self.inbox_maxlen, None, keep_from=cursor),
                    )
                    removed += int(count)
                else:
                    removed += int(self.redis.xtrim(source.key, minid=cursor))
            except RedisError as exc:  # one stream's trouble never stops the others' trim
                logger.warning("could not trim %s: %s", source.key, exc)
        return removed
