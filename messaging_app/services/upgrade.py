"""Upgrade a deployment from protocol 1 (one shared password, keys under ``foundation:msg:``) to
protocol 2, losing nothing.

Protocol 1 ran only on a single Redis, so this runs there, and each move is one MULTI/EXEC:
the copy in the new layout and the removal from the old commit together, and a run that stops
half-way can simply be run again. What moves where:

- every inbox entry not yet acknowledged (pending, or never delivered) goes to the receiver's
  requeue stream (the site writes there; the old envelope's sender is kept as it was);
- the retries waiting in ``foundation:msg:<agent>:delayed`` go to ``fdn:{agent}:delayed`` with
  their due times;
- dead letters go to their receiver's ``fdn:{agent}:dead``, still replayable;
- status events the old recorder had not recorded become message-log rows;
- the old registry's names join ``fdn:sys:agents``.

Stop the agents and the old recorder first (``docs/operations.md``, "Upgrading the wire").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from foundation_client import MalformedMessage
from foundation_client.protocol import (
    AGENT_NAME,
    AGENTS,
    GROUP,
    DeadLetter,
    Envelope,
    dead_letters,
    delayed,
    requeue,
)
from foundation_client.util import as_text
from foundation_core.redis_client import get_wire
from messaging_app.services.recorder import Row, _row, _write

logger = logging.getLogger("foundation.messaging.upgrade")

OLD_PREFIX = "foundation:msg:"
OLD_AGENTS = "foundation:msg:agents"
OLD_DEAD = "foundation:msg:dead"
OLD_EVENTS = "foundation:msg:events"
OLD_RECORDER_GROUP = "recorder"
_SYSTEM = {OLD_AGENTS, OLD_DEAD, OLD_EVENTS}


@dataclass
class UpgradeReport:
    inbox_entries: int = 0
    delayed: int = 0
    dead_letters: int = 0
    events: int = 0
    log_rows: int = 0
    agents: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def _old_agents(wire: Any) -> list[str]:
    """The old registry, and every old inbox key (SCAN: a one-off, over the old prefix)."""
    names = {as_text(n) for n in wire.smembers(OLD_AGENTS)}
    for key in wire.scan_iter(match=f"{OLD_PREFIX}*", count=1000):
        text = as_text(key)
        if text in _SYSTEM or ":done:" in text:
            continue
        names.add(text[len(OLD_PREFIX) :].removesuffix(":delayed"))
    return sorted(n for n in names if AGENT_NAME.match(n))


def _old_envelope(fields: dict[Any, Any]) -> Envelope:
    """An envelope as protocol 1 wrote it: one ``e`` field, or one field per member."""
    data = {as_text(k): v for k, v in fields.items()}
    if set(data) == {"e"}:
        return Envelope.from_json(data["e"])
    members: dict[str, Any] = {k: as_text(v) for k, v in data.items()}
    try:
        members["payload"] = orjson.loads(members["payload"])
        members["attempt"] = int(members.get("attempt") or 1)
        members["created_at"] = float(members.get("created_at") or 0.0)
    except (KeyError, ValueError, orjson.JSONDecodeError):
        raise MalformedMessage("not an envelope of protocol 1") from None
    for optional in ("correlation_id", "reply_to"):
        if not members.get(optional):
            members.pop(optional, None)
    return Envelope.from_dict(members)


def _unsettled(wire: Any, stream: str, group: str) -> list[tuple[Any, dict[Any, Any]]]:
    """The entries ``group`` has not acknowledged: its pending ones and those never delivered
    (all of them when the group does not exist)."""
    if not wire.exists(stream):
        return []
    settled_up_to = None
    for info in wire.xinfo_groups(stream):
        if as_text(info["name"]) == group:
            settled_up_to = as_text(info["last-delivered-id"])
    pending: set[str] = set()
    if settled_up_to is not None:
        start = "-"
        while True:
            batch = wire.xpending_range(stream, group, start, "+", 1000)
            pending.update(as_text(p["message_id"]) for p in batch)
            if len(batch) < 1000:
                break
            start = f"({as_text(batch[-1]['message_id'])}"
    return [
        (entry_id, fields)
        for entry_id, fields in wire.xrange(stream)
        if settled_up_to is None
        or not _not_after(as_text(entry_id), settled_up_to)
        or as_text(entry_id) in pending
    ]


def _move_inbox(wire: Any, agent: str, report: UpgradeReport) -> None:
    stream = f"{OLD_PREFIX}{agent}"
    for entry_id, fields in _unsettled(wire, stream, GROUP):
        text = as_text(entry_id)
        pipe = wire.pipeline(transaction=True)
        try:
            envelope = _old_envelope(fields)
            pipe.xadd(requeue(agent), {"e": envelope.to_json()})
        except MalformedMessage as exc:
            letter = DeadLetter.fields(f"malformed entry: {exc}", stream, text, None, fields)
            pipe.xadd(dead_letters(agent), letter)
            report.unreadable.append(f"{stream} {text}")
        pipe.xdel(stream, entry_id)
        pipe.execute()
        report.inbox_entries += 1


def _not_after(entry_id: str, bound: str) -> bool:
    a, b = entry_id.split("-"), bound.split("-")
    return (int(a[0]), int(a[1])) <= (int(b[0]), int(b[1]))


def _move_delayed(wire: Any, agent: str, report: UpgradeReport) -> None:
    key = f"{OLD_PREFIX}{agent}:delayed"
    for member, due in wire.zrange(key, 0, -1, withscores=True):
        pipe = wire.pipeline(transaction=True)
        pipe.zadd(delayed(agent), {member: due})
        pipe.zrem(key, member)
        pipe.execute()
        report.delayed += 1


def _move_dead_letters(wire: Any, report: UpgradeReport) -> None:
    for entry_id, fields in wire.xrange(OLD_DEAD):
        data = {as_text(k): as_text(v) for k, v in fields.items()}
        stream = data.get("stream", "")
        receiver = data.get("receiver") or stream.removeprefix(OLD_PREFIX)
        if not AGENT_NAME.match(receiver):
            report.unreadable.append(f"{OLD_DEAD} {as_text(entry_id)}")
            continue
        envelope_fields = {k: v for k, v in fields.items() if as_text(k) not in _DEAD_META}
        try:
            envelope: Envelope | None = _old_envelope(envelope_fields)
            raw = None
        except MalformedMessage:
            envelope, raw = None, orjson.loads(data["raw"]) if "raw" in data else envelope_fields
        letter = DeadLetter.fields(
            data.get("reason", "dead under protocol 1"),
            stream,
            data.get("entry_id", ""),
            envelope,
            raw,
        )
        letter["dead_at"] = data.get("dead_at", letter["dead_at"])
        pipe = wire.pipeline(transaction=True)
        pipe.xadd(dead_letters(receiver), letter)
        pipe.xdel(OLD_DEAD, entry_id)
        pipe.execute()
        report.dead_letters += 1


_DEAD_META = {"reason", "stream", "entry_id", "dead_at", "raw"}


def _old_event_rows(event_id: str, fields: dict[Any, Any]) -> list[Row]:
    data = {as_text(k): as_text(v) for k, v in fields.items()}
    status = data.get("status", "")[:20] or "unknown"
    try:
        when = datetime.fromtimestamp(float(data.get("at") or 0), tz=UTC)
    except ValueError:
        when = datetime.now(tz=UTC)
    if "batch" in data:
        try:
            items = orjson.loads(data["batch"])
        except orjson.JSONDecodeError:
            return []
    else:
        items = [{**data, "id": data.get("message_id")}]
    rows = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("payload"), str):
            try:
                item["payload"] = orjson.loads(item["payload"])
            except orjson.JSONDecodeError:
                item["payload"] = None
        attempt = item.get("attempt")
        if isinstance(attempt, str):
            item["attempt"] = int(attempt) if attempt.isdigit() and len(attempt) < 10 else None
        rows.append(
            _row(item, status=status, when=when, error=data.get("error"), event_id=event_id)
        )
    return rows


def _record_old_events(wire: Any, report: UpgradeReport) -> None:
    """What the old recorder had not written: entries after its group's last delivery, and
    those it had read but not acknowledged. Each entry's rows commit before it is deleted."""
    from django.db import transaction

    for entry_id, fields in _unsettled(wire, OLD_EVENTS, OLD_RECORDER_GROUP):
        rows = _old_event_rows(as_text(entry_id), fields)
        if rows:
            with transaction.atomic():
                _write(rows)
        wire.xdel(OLD_EVENTS, entry_id)
        report.log_rows += len(rows)
        report.events += 1


def upgrade(*, dry_run: bool = False) -> UpgradeReport:
    """Move every message of protocol 1 into protocol 2 (see the module's docstring)."""
    wire = get_wire()
    report = UpgradeReport(agents=_old_agents(wire))
    if dry_run:
        for agent in report.agents:
            report.inbox_entries += len(_unsettled(wire, f"{OLD_PREFIX}{agent}", GROUP))
            report.delayed += wire.zcard(f"{OLD_PREFIX}{agent}:delayed")
        report.dead_letters = wire.xlen(OLD_DEAD)
        report.events = len(_unsettled(wire, OLD_EVENTS, OLD_RECORDER_GROUP))
        return report
    _record_old_events(wire, report)
    for agent in report.agents:
        _move_inbox(wire, agent, report)
        _move_delayed(wire, agent, report)
    _move_dead_letters(wire, report)
    if report.agents:
        wire.sadd(AGENTS, *report.agents)
    for agent in report.agents:
        # What is left there was acknowledged under protocol 1: handled.
        wire.delete(f"{OLD_PREFIX}{agent}")
    wire.delete(OLD_EVENTS)  # what is left there was recorded under protocol 1
    if wire.exists(OLD_DEAD) and wire.xlen(OLD_DEAD) == 0:
        wire.delete(OLD_DEAD)
    wire.delete(OLD_AGENTS)
    logger.info("upgraded the wire: %s", report)
    return report


__all__ = ["UpgradeReport", "upgrade"]
