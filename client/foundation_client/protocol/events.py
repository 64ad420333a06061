"""Status events (what happened to messages, for the message log) and dead letters."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from foundation_client._exceptions import MalformedMessage
from foundation_client.protocol.envelope import Envelope
from foundation_client.util import as_text, dump_json

#: What a message's log rows say. ``sent`` is read from the inboxes themselves (the key proves
#: the sender); the others from ``events(agent)`` (the receiver's word) and ``site_events``.
STATUSES = ("sent", "delivered", "failed", "dead", "replayed")
#: Times past this (the year 3000) are not believed: an agent writes its own events.
LATEST_TIME = 32_503_680_000.0


def status_event(
    status: str, heads: list[dict[str, Any]], *, error: str | None = None
) -> dict[str, Any]:
    """The one event format: a status, a time and a batch of envelope heads (with ``payload``
    for statuses whose log rows keep it), and the error for ``failed`` and ``dead``."""
    fields: dict[str, Any] = {"status": status, "at": repr(time.time()), "batch": dump_json(heads)}
    if error:
        fields["error"] = error[:2000]
    return fields


@dataclass(frozen=True)
class StatusEvent:
    status: str
    at: float
    items: list[dict[str, Any]]
    error: str | None

    @classmethod
    def decode(cls, fields: dict[Any, Any]) -> StatusEvent:
        """Parse an events entry; raise :class:`MalformedMessage` saying what is wrong."""
        data = {as_text(k): v for k, v in fields.items()}
        status = as_text(data.get("status", b""))
        if status not in STATUSES:
            raise MalformedMessage(f"unknown status {status[:40]!r}")
        try:
            at = float(as_text(data.get("at", b"")))
            items = orjson.loads(data.get("batch", b""))
        except (ValueError, orjson.JSONDecodeError):
            raise MalformedMessage("an event needs a time and a JSON batch") from None
        if not 0 <= at < LATEST_TIME:  # NaN fails too
            raise MalformedMessage("an event's time is out of range")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise MalformedMessage("an event's batch is a list of objects")
        error = data.get("error")
        return cls(status, at, items, as_text(error) if error is not None else None)


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as its stream entry holds it: the envelope (or the raw entry, when it was
    not one), why, and where it came from."""

    entry_id: str
    reason: str
    stream: str
    source_entry: str
    dead_at: float
    envelope: Envelope | None
    raw: str | None

    @staticmethod
    def fields(
        reason: str, stream: str, source_entry: str, envelope: Envelope | None, raw: Any
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reason": reason[:2000],
            "stream": stream,
            "entry_id": source_entry,
            "dead_at": repr(time.time()),
        }
        if envelope is not None:
            out["e"] = envelope.to_json()
        else:
            out["raw"] = dump_json({as_text(k): as_text(v) for k, v in (raw or {}).items()})[:65536]
        return out

    @classmethod
    def decode(cls, entry_id: Any, fields: dict[Any, Any]) -> DeadLetter:
        data = {as_text(k): v for k, v in fields.items()}
        envelope = None
        if "e" in data:
            try:
                envelope = Envelope.from_json(data["e"])
            except MalformedMessage:
                envelope = None
        try:
            dead_at = float(as_text(data.get("dead_at", b"0")))
        except ValueError:
            dead_at = 0.0
        return cls(
            entry_id=as_text(entry_id),
            reason=as_text(data.get("reason", b"")),
            stream=as_text(data.get("stream", b"")),
            source_entry=as_text(data.get("entry_id", b"")),
            dead_at=dead_at,
            envelope=envelope,
            raw=as_text(data["raw"]) if "raw" in data else None,
        )
