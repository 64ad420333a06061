"""Small helpers the client and the site share; not wire formats (``protocol`` holds those)."""

from __future__ import annotations

import os
from typing import Any

import orjson


def new_id() -> str:
    """128 random bits as 32 hex characters (what uuid4().hex looks like, at a sixth the cost)."""
    return os.urandom(16).hex()


def new_ids(count: int) -> list[str]:
    """``count`` ids from one read of the system's random source."""
    text = os.urandom(16 * count).hex()
    return [text[i : i + 32] for i in range(0, 32 * count, 32)]


def dump_json(value: Any) -> bytes:
    """Compact JSON by orjson: messaging's hot path makes a document a message, and the standard
    library's encoder was a large share of a producer's time (docs/measurements.md). Raises
    ``TypeError`` for what JSON cannot hold exactly (sets, non-string keys, integers beyond 64
    bits). Datetimes, UUIDs, enums and dataclasses become their JSON forms (RFC 3339 text, text,
    value, object), and NaN and infinities become null, as in JavaScript."""
    return orjson.dumps(value)


def as_text(value: Any) -> str:
    """A Redis reply item (bytes) as text; undecodable bytes are replaced, never fatal."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
