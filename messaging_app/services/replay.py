"""Dead letters and replay: put messages back into their receivers' requeue streams.

A dead letter is replayed by one script in the receiver's slot that deletes it and, only if
that deletion removed it, delivers it: two replays of one dead letter at once deliver it once.
Each replay writes a ``replayed`` event into ``fdn:site:{receiver}:events`` (the site's own
stream in the receiver's slot) and is audited.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest

from audit_app import services as audit
from foundation_client.protocol import (
    AGENT_NAME,
    REPLAY_DEAD_LETTER,
    REQUEUE,
    DeadLetter,
    Envelope,
    requeue,
    site_events,
)
from foundation_client.protocol import dead_letters as dead_letters_key
from foundation_client.util import dump_json
from foundation_core.redis_client import get_wire
from messaging_app.models import MessageLog
from messaging_app.services.agents import wire_agents

#: The requeue stream's backstop, as the client's (``MessagingConfig.requeue_maxlen``).
REQUEUE_MAXLEN = 100_000
_ENTRY = r"\d{1,20}-\d{1,20}"


@dataclass(frozen=True)
class DeadLetterView:
    """A dead letter as the admin lists it; ``entry_id`` is ``<receiver>/<stream entry id>``."""

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


def _view(receiver: str, letter: DeadLetter) -> DeadLetterView:
    envelope = letter.envelope
    preview = envelope.payload_bytes().decode() if envelope is not None else (letter.raw or "")
    return DeadLetterView(
        entry_id=f"{receiver}/{letter.entry_id}",
        reason=letter.reason,
        receiver=receiver,
        sender=envelope.sender if envelope else "",
        message_type=envelope.type if envelope else "",
        message_id=envelope.id if envelope else letter.source_entry,
        attempt=str(envelope.attempt) if envelope else "",
        dead_at=datetime.fromtimestamp(letter.dead_at, tz=UTC),
        payload_preview=preview[:200],
        replayable=envelope is not None,
    )


def dead_letters(count: int = 200, receiver: str | None = None) -> list[DeadLetterView]:
    """The newest dead letters of every agent (or one), newest first."""
    if receiver and not AGENT_NAME.match(receiver):
        return []  # not a name: no key is built from it
    names = [receiver] if receiver else wire_agents()
    wire = get_wire()
    pipe = wire.pipeline(transaction=False)
    for name in names:
        pipe.xrevrange(dead_letters_key(name), count=count)
    letters = [
        _view(name, DeadLetter.decode(entry_id, fields))
        for name, entries in zip(names, pipe.execute(), strict=True)
        for entry_id, fields in entries
    ]
    letters.sort(key=lambda letter: letter.dead_at, reverse=True)
    return letters[:count]


@dataclass
class ReplayReport:
    replayed: list[str]
    skipped: list[str]


def _split(entry: str) -> tuple[str, str] | None:
    receiver, sep, entry_id = entry.partition("/")
    if not sep or not AGENT_NAME.match(receiver) or not re.fullmatch(_ENTRY, entry_id):
        return None
    return receiver, entry_id


def replay_dead_letters(
    entry_ids: list[str], *, actor: object, request: HttpRequest | None = None
) -> ReplayReport:
    """Put dead letters (``<receiver>/<entry id>``) back to their receivers (attempt 1, same
    message id and trace, so a de-duplicating handler still recognises them). Each is delivered
    at most once, however many replays run at once; the whole request is audited."""
    wire = get_wire()
    script = wire.register_script(REPLAY_DEAD_LETTER)
    report = ReplayReport([], [])
    for entry in entry_ids:
        parts = _split(entry)
        found = wire.xrange(dead_letters_key(parts[0]), parts[1], parts[1]) if parts else []
        letter = DeadLetter.decode(found[0][0], found[0][1]) if found else None
        if parts is None or letter is None or letter.envelope is None:
            report.skipped.append(entry)  # unknown, or a foreign entry: nothing to deliver
            continue
        receiver, entry_id = parts
        fresh = replace(letter.envelope, attempt=1)
        delivered = script(
            keys=[dead_letters_key(receiver), requeue(receiver), site_events(receiver)],
            args=[
                entry_id,
                fresh.to_json(),
                repr(time.time()),
                dump_json([{**fresh.head(), "payload": fresh.payload}]),
                REQUEUE_MAXLEN,
            ],
        )
        (report.replayed if delivered else report.skipped).append(entry)
    audit.record(
        "messaging.replay",
        actor,
        "dead_letters",
        "replay",
        success=not report.skipped,
        request=request,
        error=None if not report.skipped else f"{len(report.skipped)} entries not replayable",
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
    batch: int = 200,
) -> int:
    """Send again every message sent to ``receiver`` between ``start`` and ``end`` (from the
    message log), with their original ids and traces; returns how many."""
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
    wire = get_wire()
    script = wire.register_script(REQUEUE)
    count, skipped, finished = 0, [], False
    pending: list[Envelope] = []

    def flush() -> None:
        nonlocal count
        if not pending:
            return
        script(
            keys=[requeue(receiver), site_events(receiver)],
            args=[
                repr(time.time()),
                dump_json([{**e.head(), "payload": e.payload} for e in pending]),
                REQUEUE_MAXLEN,
                *(e.to_json() for e in pending),
            ],
        )
        count += len(pending)
        pending.clear()

    try:
        for row in sent.iterator():
            envelope = _from_row(row, receiver)
            if envelope is None:
                skipped.append(row.message_id or "")
                continue
            pending.append(envelope)
            if len(pending) >= batch:
                flush()
        flush()
        finished = True
    finally:
        # Audited whatever happened: a replay stopped half-way (Redis gone) says how far it got.
        audit.record(
            "messaging.replay",
            actor,
            f"agent:{receiver}",
            "replay_range",
            success=finished and not skipped,
            request=request,
            error="stopped by an error"
            if not finished
            else (f"{len(skipped)} message(s) not replayable" if skipped else None),
            start=start.isoformat(),
            end=end.isoformat(),
            messages=count,
            skipped=skipped,
        )
    return count


def _from_row(row: MessageLog, receiver: str) -> Envelope | None:
    """The envelope a logged ``sent`` row stands for, or None when the wire cannot carry it (a
    payload JSON holds but orjson does not, such as a huge integer; a malformed logged field)."""
    data: dict[str, Any] = {
        "sender": row.sender,
        "receiver": receiver,
        "type": row.message_type,
        "payload": row.payload,
        "id": row.message_id,
        "correlation_id": row.correlation_id,
        "traceparent": row.traceparent,
    }
    try:
        envelope = Envelope.from_dict(data)
        envelope.to_json()
    except (ValueError, TypeError):
        return None
    return envelope
