"""The message envelope: one definition of its members, from which encoding and decoding derive
(``ENVELOPE_FIELDS``)."""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Any

import orjson

from foundation_client._exceptions import MalformedMessage
from foundation_client.protocol.keys import AGENT_NAME
from foundation_client.util import dump_json, new_id

#: Message types are plain tokens, like agent names: they need no JSON escaping, and a malformed
#: one is refused at ``send`` rather than discovered by a consumer.
MESSAGE_TYPE = re.compile(r"[A-Za-z0-9_.:-]{1,50}")
#: Message and correlation ids: tokens that name Redis keys (``done:<id>``) safely: no braces
#: (hash tags), no colons, no glob characters.
MESSAGE_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")
#: W3C trace context (``version-trace_id-parent_id-flags``), carried, never interpreted here.
TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


@dataclass(slots=True)
class Envelope:
    """One message. Treat it as immutable (``next_attempt`` makes a changed copy); it is not a
    frozen dataclass only because a frozen one costs twice as much to make.

    The members, in this order, are the wire format (``ENVELOPE_FIELDS``)."""

    sender: str
    receiver: str
    type: str
    payload: Any
    id: str = field(default_factory=new_id)
    attempt: int = 1
    correlation_id: str | None = None
    created_at: float = field(default_factory=time.time)
    reply_to: str | None = None
    traceparent: str | None = None
    # The payload's JSON, when already made (sending checks its size): not made twice.
    payload_json: bytes | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> bytes:
        """The envelope as one JSON object: what an inbox entry carries (field ``e``). The
        payload's JSON, already made when sending, is spliced in rather than made again."""
        head = dump_json(dict(zip(HEAD_FIELDS, _head(self), strict=True)))
        return b"".join((head[:-1], b',"payload":', self.payload_bytes(), b"}"))

    def to_entry(self) -> dict[str, bytes]:
        return {"e": self.to_json()}

    def head(self) -> dict[str, Any]:
        """Every member but the payload: what a status event says of a message."""
        return dict(zip(HEAD_FIELDS, _head(self)))  # noqa: B905 - one schema, equal lengths

    @classmethod
    def from_json(cls, raw: str | bytes) -> Envelope:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MalformedMessage(f"envelope is not JSON: {exc}") from None
        if type(data) is not dict:
            raise MalformedMessage("envelope is not an object")
        # Fast path: an envelope as ``to_json`` writes it, taken as it is once its types are
        # checked. Consumers parse every message, and this is their largest cost after the
        # handler; anything else goes through ``from_dict``, which says what is wrong.
        try:
            envelope = cls(*_members(data))
        except KeyError:
            return cls.from_dict(data)
        if _well_typed(envelope):
            return envelope
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
        """Parse a decoded envelope, member by member; raise :class:`MalformedMessage` saying
        which member is wrong. Missing optional members take their defaults."""
        values: dict[str, Any] = {}
        for spec in _SPECS:
            if spec.name not in data or (data[spec.name] is None and spec.optional):
                if spec.required:
                    raise MalformedMessage(f"missing field: {spec.name}")
                continue
            value = data[spec.name]
            if spec.name == "created_at" and type(value) is int:
                value = float(value)
            if not spec.valid(value):
                raise MalformedMessage(f"field {spec.name} is not {spec.description}")
            values[spec.name] = value
        return cls(**values)

    @classmethod
    def from_entry(cls, fields: dict[Any, Any]) -> Envelope:
        """Parse an inbox entry: one field ``e``, the envelope's JSON."""
        raw = fields.get(b"e")
        if raw is None:
            raw = fields.get("e")
        if raw is None or len(fields) != 1:
            raise MalformedMessage("an inbox entry has exactly one field, 'e'")
        return cls.from_json(raw)

    def payload_bytes(self) -> bytes:
        if self.payload_json is None:
            self.payload_json = dump_json(self.payload)
        return self.payload_json

    def next_attempt(self) -> Envelope:
        return replace(self, attempt=self.attempt + 1)


@dataclass(frozen=True)
class _Spec:
    name: str
    kinds: tuple[type, ...]
    optional: bool  # may be null
    required: bool  # must be present
    pattern: re.Pattern[str] | None = None
    description: str = ""

    def valid(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if self.kinds == (object,):  # the payload: any JSON value
            return True
        if type(value) not in self.kinds:
            return False
        if self.pattern is not None:
            return self.pattern.fullmatch(value) is not None
        if self.name == "attempt":
            return bool(value >= 1)
        return True


_SPECS = (
    _Spec("sender", (str,), False, True, AGENT_NAME, "an agent name"),
    _Spec("receiver", (str,), False, True, AGENT_NAME, "an agent name"),
    _Spec("type", (str,), False, True, MESSAGE_TYPE, "a message type"),
    _Spec("payload", (object,), True, True, None, "JSON"),
    _Spec("id", (str,), False, True, MESSAGE_ID, "a message id"),
    _Spec("attempt", (int,), False, False, None, "an integer of at least 1"),
    _Spec("correlation_id", (str,), True, False, MESSAGE_ID, "a message id"),
    _Spec("created_at", (float,), False, False, None, "a number"),
    _Spec("reply_to", (str,), True, False, AGENT_NAME, "an agent name"),
    _Spec("traceparent", (str,), True, False, TRACEPARENT, "a W3C traceparent"),
)

#: The envelope's members, in wire and constructor order: the one schema.
ENVELOPE_FIELDS: tuple[str, ...] = tuple(spec.name for spec in _SPECS)
if tuple(f.name for f in dataclasses.fields(Envelope))[:-1] != ENVELOPE_FIELDS:
    raise AssertionError("the envelope's specs and its dataclass disagree")
#: Every member but the payload, as events and the head of ``to_json`` carry them.
HEAD_FIELDS: tuple[str, ...] = tuple(name for name in ENVELOPE_FIELDS if name != "payload")
_head = attrgetter(*HEAD_FIELDS)
_members = itemgetter(*ENVELOPE_FIELDS)
_ID = MESSAGE_ID.fullmatch


@lru_cache(maxsize=4096)
def _name(text: str) -> bool:
    """An agent name? Cached: a consumer sees the same few names in every message."""
    return AGENT_NAME.fullmatch(text) is not None


@lru_cache(maxsize=4096)
def _type(text: str) -> bool:
    return MESSAGE_TYPE.fullmatch(text) is not None


def _well_typed(e: Envelope) -> bool:
    """The fast path's checks: what ``from_dict`` would accept, for the usual shape."""
    return bool(
        type(e.sender) is str
        and type(e.receiver) is str
        and type(e.type) is str
        and type(e.id) is str
        and type(e.attempt) is int
        and e.attempt > 0
        and type(e.created_at) is float
        and _name(e.sender)
        and _name(e.receiver)
        and _type(e.type)
        and _ID(e.id) is not None
        and (e.correlation_id is None or (type(e.correlation_id) is str and _ID(e.correlation_id)))
        and (e.reply_to is None or (type(e.reply_to) is str and _name(e.reply_to)))
        and (
            e.traceparent is None
            or (type(e.traceparent) is str and TRACEPARENT.fullmatch(e.traceparent) is not None)
        )
    )
