"""The message envelope and the Redis names of messaging: one definition for agents and the site.

Every agent has an inbox stream read by the consumer group ``agents``; several processes of one
agent share its inbox. Retries wait in a per-agent sorted set until due. Messages that cannot be
handled end in one dead-letter stream; every status change goes to one events stream, which the
site's recorder turns into ``message_logs`` rows.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

#: Message types are plain tokens, like agent names (``_wire.AGENT_NAME``): they need no JSON
#: escaping, and a malformed one is refused at ``send`` rather than discovered by a consumer.
MESSAGE_TYPE = re.compile(r"^[A-Za-z0-9_.:-]{1,50}$")


def new_id() -> str:
    """128 random bits as 32 hex characters (what uuid4().hex looks like, at a sixth the cost)."""
    return os.urandom(16).hex()


def new_ids(count: int) -> list[str]:
    """``count`` ids from one read of the system's random source."""
    text = os.urandom(16 * count).hex()
    return [text[i : i + 32] for i in range(0, 32 * count, 32)]


GROUP = "agents"
DEAD_LETTERS = "foundation:msg:dead"
EVENTS = "foundation:msg:events"
AGENTS = "foundation:msg:agents"  # the set of agent names that consume, for broadcast

REPLY_TYPE = "__reply__"


def inbox(agent: str) -> str:
    return f"foundation:msg:{agent}"


def delayed(agent: str) -> str:
    return f"foundation:msg:{agent}:delayed"


def done_key(agent: str, message_id: str) -> str:
    return f"foundation:msg:{agent}:done:{message_id}"


def dump_json(value: Any) -> bytes:
    """Compact JSON by orjson: messaging's hot path makes two documents a message, and the
    standard library's encoder was a third of a producer's time. Raises ``TypeError`` for what
    JSON cannot hold exactly (sets, non-string keys, integers beyond 64 bits). Datetimes, UUIDs,
    enums and dataclasses become their JSON forms (RFC 3339 text, text, value, object), and NaN
    and infinities become null, as in JavaScript."""
    return orjson.dumps(value)


def _text(value: object) -> bool:
    return type(value) is str and value != ""


class MalformedMessage(ValueError):
    """An entry that is not an envelope (a foreign producer, a truncated write)."""


def parse_stream_id(raw: str | bytes) -> tuple[int, int]:
    """A stream entry id ("1764161234567-3") as (milliseconds, sequence), for comparing."""
    ms, _, seq = as_text(raw).partition("-")
    return int(ms), int(seq or 0)


def as_text(value: Any) -> str:
    """A Redis reply item (bytes) as text; undecodable bytes are replaced, never fatal."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@dataclass(slots=True)
class Envelope:
    """One message. Treat it as immutable (``next_attempt`` makes a changed copy); it is not a
    frozen dataclass only because a frozen one costs twice as much to make."""

    sender: str
    receiver: str
    type: str
    payload: Any
    id: str = field(default_factory=new_id)
    attempt: int = 1
    correlation_id: str | None = None
    created_at: float = field(default_factory=time.time)
    reply_to: str | None = None
    # The payload's JSON, when already made (sending checks its size): not made twice.
    payload_json: bytes | None = field(default=None, compare=False, repr=False)

    def to_fields(self) -> dict[str, str]:
        return {
            "id": self.id,
            "sender": self.sender,
            "receiver": self.receiver,
            "type": self.type,
            "payload": self.payload_text(),
            "attempt": str(self.attempt),
            "correlation_id": self.correlation_id or "",
            "created_at": repr(self.created_at),
            "reply_to": self.reply_to or "",
        }

    def to_json(self) -> bytes:
        """The envelope as one JSON object: what an inbox entry carries (field ``e``). The
        payload's JSON, already made when sending, is spliced in rather than made again."""
        head = orjson.dumps(
            {
                "id": self.id,
                "sender": self.sender,
                "receiver": self.receiver,
                "type": self.type,
                "attempt": self.attempt,
                "correlation_id": self.correlation_id,
                "created_at": self.created_at,
                "reply_to": self.reply_to,
            }
        )
        return b"".join((head[:-1], b',"payload":', self.payload_bytes(), b"}"))

    def to_entry(self) -> dict[str, bytes]:
        return {"e": self.to_json()}

    @classmethod
    def from_json(cls, raw: str | bytes) -> Envelope:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MalformedMessage(f"envelope is not JSON: {exc}") from None
        # Fast path: an envelope as ``to_json`` writes it, taken as it is once its types are
        # checked. Consumers parse every message, and this is their largest cost after the
        # handler; anything else goes through ``_from_dict``, which says what is wrong.
        try:
            envelope = cls(
                data["sender"],
                data["receiver"],
                data["type"],
                data["payload"],
                data["id"],
                data["attempt"],
                data["correlation_id"],
                data["created_at"],
                data["reply_to"],
            )
        except (KeyError, TypeError):
            return cls._from_dict(data)
        if (
            type(envelope.id) is str
            and type(envelope.sender) is str
            and type(envelope.receiver) is str
            and type(envelope.type) is str
            and envelope.id
            and envelope.sender
            and envelope.receiver
            and envelope.type
            and type(envelope.attempt) is int
            and envelope.attempt > 0
            and type(envelope.created_at) is float
            and (envelope.correlation_id is None or _text(envelope.correlation_id))
            and (envelope.reply_to is None or _text(envelope.reply_to))
        ):
            return envelope
        return cls._from_dict(data)

    @classmethod
    def _from_dict(cls, data: Any) -> Envelope:
        if type(data) is not dict:
            raise MalformedMessage("envelope is not an object")
        get = data.get
        identity = (get("id"), get("sender"), get("receiver"), get("type"))
        if not all(identity) or "payload" not in data:
            names = ("id", "sender", "receiver", "type")
            missing = [n for n, v in zip(names, identity, strict=True) if not v]
            raise MalformedMessage(f"missing field(s): {', '.join(missing or ['payload'])}")
        attempt, created_at = get("attempt", 1), get("created_at", 0.0)
        if type(attempt) is not int or attempt < 1 or not isinstance(created_at, int | float):
            raise MalformedMessage("attempt or created_at is not a valid number")
        return cls(
            id=str(identity[0]),
            sender=str(identity[1]),
            receiver=str(identity[2]),
            type=str(identity[3]),
            payload=data["payload"],
            attempt=attempt,
            correlation_id=str(get("correlation_id") or "") or None,
            created_at=float(created_at),
            reply_to=str(get("reply_to") or "") or None,
        )

    @classmethod
    def from_entry(cls, fields: dict[Any, Any]) -> Envelope:
        """Parse an inbox entry: one ``e`` field (ours), or one field per envelope member (a
        foreign producer's, or a dead letter's)."""
        raw = fields.get(b"e")
        if raw is None:
            raw = fields.get("e")
        if raw is not None and len(fields) == 1:
            return cls.from_json(raw)
        return cls.from_fields(fields)

    @classmethod
    def from_fields(cls, fields: dict[Any, Any]) -> Envelope:
        """Parse a stream entry; raise :class:`MalformedMessage` saying what is wrong."""
        data = {as_text(k): as_text(v) for k, v in fields.items()}
        missing = [
            name for name in ("id", "sender", "receiver", "type", "payload") if not data.get(name)
        ]
        if missing:
            raise MalformedMessage(f"missing field(s): {', '.join(missing)}")
        try:
            payload = orjson.loads(data["payload"])
        except orjson.JSONDecodeError:
            raise MalformedMessage("payload is not JSON") from None
        try:
            attempt = int(data.get("attempt") or 1)
            created_at = float(data.get("created_at") or 0.0)
        except ValueError:
            raise MalformedMessage("attempt or created_at is not a number") from None
        if attempt < 1:
            raise MalformedMessage("attempt must be at least 1")
        return cls(
            id=data["id"],
            sender=data["sender"],
            receiver=data["receiver"],
            type=data["type"],
            payload=payload,
            payload_json=data["payload"].encode(),
            attempt=attempt,
            correlation_id=data.get("correlation_id") or None,
            created_at=created_at,
            reply_to=data.get("reply_to") or None,
        )

    def payload_bytes(self) -> bytes:
        if self.payload_json is None:
            self.payload_json = dump_json(self.payload)
        return self.payload_json

    def payload_text(self) -> str:
        return self.payload_bytes().decode()

    def next_attempt(self) -> Envelope:
        return replace(self, attempt=self.attempt + 1)


def event_fields(
    status: str,
    envelope: Envelope | None,
    *,
    error: str | None = None,
    message_id: str | None = None,
    include_payload: bool = False,
) -> dict[str, str]:
    """One status event for the recorder."""
    fields = {"status": status, "at": repr(time.time())}
    if envelope is not None:
        fields.update(
            message_id=envelope.id,
            sender=envelope.sender,
            receiver=envelope.receiver,
            type=envelope.type,
            correlation_id=envelope.correlation_id or "",
            attempt=str(envelope.attempt),
        )
        if include_payload:
            fields["payload"] = envelope.payload_text()
    elif message_id:
        fields["message_id"] = message_id
    if error:
        fields["error"] = error[:2000]
    return fields
