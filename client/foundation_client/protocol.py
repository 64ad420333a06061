"""The wire protocol between agents and the foundation: everything both sides must agree on.

The site (Django) imports this module and no private ``foundation_client._*`` module (a test
enforces it). Change what is here and ``PROTOCOL_VERSION`` changes with it.

**Keys** (every key an agent owns carries its name as a Redis Cluster hash tag, so each atomic
multi-key operation touches one slot)::

    fdn:{b}:requeue         stream  b's retries and the site's replays (sender from the envelope)
    fdn:{b}:delayed         zset    b's retries waiting for their backoff
    fdn:{b}:done:<a>:<id>   string  b handled a's message <id> (de-duplication)
    fdn:{b}:events          stream  b's status events (delivered, failed, dead), for the recorder
    fdn:{b}:dead            stream  b's dead letters
    fdn:in:<a>:{b}          stream  messages from a to b: only a may append, only b consume
    fdn:site:{b}:events     stream  the site's status events about b's messages (replayed)
    fdn:sys:agents          set     the registered agents (written by the site, read by agents)
    fdn:sys:notices:<what>  pub/sub the site's notices (secrets rotated, config changed, ...)

Agent names are ``[a-z][a-z0-9_-]*``: they hold no brace or colon, so ``fdn:{b}:...`` and
``fdn:in:<a>:{...}`` can never reach ``fdn:sys:``, ``fdn:site:`` or another agent's keys, and
names such as ``events``, ``dead`` or ``agents`` collide with nothing.

**Who may do what** is the Redis ACL of ``acl_rules``: b's user has its own ``fdn:{b}:*`` keys,
consumes (never appends to, trims or deletes) ``fdn:in:*:{b}``, appends (XADD only) to
``fdn:in:b:{*}``, reads the registry, subscribes to the notices and publishes nothing. So the
sender of an entry in ``fdn:in:a:{b}`` is a: a receiver reads ``envelope.sender`` from the key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from foundation_client._answers import (
    ANSWER_NONCE,
    ANSWER_NONCE_PATTERN,
    ANSWER_SIGNATURE_ALGORITHM,
    SecretAnswer,
    load_site_public_key,
    new_nonce,
)
from foundation_client._envelope import (
    ENVELOPE_FIELDS,
    HEAD_FIELDS,
    LOG_COLUMNS,
    MESSAGE_ID,
    MESSAGE_TYPE,
    TRACEPARENT,
    Envelope,
    MalformedMessage,
    as_text,
    dump_json,
    new_id,
    new_ids,
)
from foundation_client._redis import REDIS_SCHEMES, is_cluster, node_url, redacted_url
from foundation_client._sealing import (
    ALGORITHM as SEALING_ALGORITHM,
)
from foundation_client._sealing import (
    generate_keypair,
    load_public_key,
    open_sealed,
    seal,
    sealing_context,
)
from foundation_client._wire import (
    AGENT_NAME,
    AGENT_NAME_PATTERN,
    SECRETS_API_PATH,
    SECRETS_ROTATION_CHANNEL,
    RotationNotice,
)

#: Bumped whenever anything in this module changes meaning on the wire. Version 1 was the
#: shared-password layout under ``foundation:msg:*`` (``manage.py upgrade_wire`` moves it).
PROTOCOL_VERSION = 2

# --- keys -----------------------------------------------------------------------------------
#: The consumer group every agent reads its inboxes in (all processes of one agent share it).
GROUP = "agents"
#: The registered agents' names: written by the site, read by agents (broadcast, inboxes).
AGENTS = "fdn:sys:agents"
#: Prefix of the site's pub/sub notices; agents may subscribe to them, never publish.
NOTICES = "fdn:sys:notices:"
REPLY_TYPE = "__reply__"


def agent_key(agent: str, part: str) -> str:
    """A key of ``agent``'s own (``fdn:{agent}:part``)."""
    return f"fdn:{{{agent}}}:{part}"


def inbox(receiver: str, sender: str) -> str:
    """The stream of messages from ``sender`` to ``receiver``."""
    return f"fdn:in:{sender}:{{{receiver}}}"


def inbox_sender(key: str | bytes) -> str | None:
    """The sender an inbox key names, or None when it is not an inbox key."""
    text = as_text(key)
    if not text.startswith("fdn:in:"):
        return None
    sender, sep, rest = text[7:].partition(":{")
    if not sep or not rest.endswith("}") or not AGENT_NAME.match(sender):
        return None
    return sender


def requeue(agent: str) -> str:
    return agent_key(agent, "requeue")


def delayed(agent: str) -> str:
    return agent_key(agent, "delayed")


def done_key(agent: str, sender: str, message_id: str) -> str:
    """``agent`` handled ``sender``'s message ``message_id``. Per sender: ids are chosen by
    senders, and one must not be able to make another's message look handled."""
    return agent_key(agent, f"done:{sender}:{message_id}")


def events(agent: str) -> str:
    return agent_key(agent, "events")


def dead_letters(agent: str) -> str:
    return agent_key(agent, "dead")


def site_events(agent: str) -> str:
    """Status events the site writes about ``agent``'s messages: in its slot, out of its reach."""
    return f"fdn:site:{{{agent}}}:events"


def acl_user(agent: str) -> str:
    """The Redis ACL user of an agent (prefixed, so no agent can be ``default``)."""
    return f"agent-{agent}"


def acl_rules(agent: str) -> list[str]:
    """The ACL rules of ``agent``'s Redis user, without its password and on/off state.

    Root permissions: its own keys (streams, strings, hashes, sets, sorted sets, lists, expiry),
    scripts (which run with these same permissions), subscribing to the notices. Selectors add,
    each with its own keys: consuming its inboxes (no XADD, XTRIM, XDEL, DEL or XGROUP DESTROY
    there), appending to the inboxes it sends to (XADD only), reading the registry. Nothing
    else: no PUBLISH, no SCAN or KEYS, nothing @dangerous.
    """
    if not AGENT_NAME.match(agent):
        raise ValueError(f"{agent!r} is not an agent name")
    # EVALSHA only: the site loads the protocol's scripts (``AGENT_SCRIPTS``). EVAL or SCRIPT
    # LOAD would let an agent run a loop that stops the server for everyone.
    scripts = ["+evalsha", "+evalsha_ro"]
    return [
        "resetkeys",
        f"~{agent_key(agent, '*')}",
        "resetchannels",
        f"&{NOTICES}*",
        "-@all",
        *("+@stream", "+@string", "+@hash", "+@set", "+@sortedset", "+@list"),
        *("+del", "+unlink", "+exists", "+type", "+ttl", "+pttl", "+persist"),
        *("+expire", "+pexpire", "+expireat", "+pexpireat"),
        *scripts,
        "+script|exists",
        *("+subscribe", "+unsubscribe", "+psubscribe", "+punsubscribe"),
        # Connection commands by name: @connection would include CLIENT TRACKING, whose
        # broadcast mode tells a client every key name anyone writes.
        *("+hello", "+auth", "+ping", "+echo", "+quit", "+reset", "+select"),
        *("+client|id", "+client|info", "+client|setname", "+client|getname"),
        *("+command", "+readonly", "+readwrite", "+asking"),
        *("+cluster|slots", "+cluster|shards", "+cluster|nodes", "+cluster|myid"),
        *("-sort", "-sort_ro", "-@dangerous", "-publish", "-spublish"),
        " ".join(
            (
                f"(~fdn:in:*:{{{agent}}}",
                f"~{agent_key(agent, '*')}",
                "+xreadgroup +xack +xclaim +xautoclaim +xpending +xinfo",
                "+xgroup|create +xgroup|createconsumer +xgroup|delconsumer",
                "+xlen +xrange +xrevrange",
                " ".join(scripts) + ")",
            )
        ),
        f"(%W~fdn:in:{agent}:{{*}} +xadd)",
        f"(%R~{AGENTS} +smembers +sismember +scard)",
    ]


# --- status events --------------------------------------------------------------------------
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


# --- dead letters ---------------------------------------------------------------------------
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


# --- Lua scripts (each touches the keys of one agent: one slot) ------------------------------
#: Move due retries from b's delayed set into its requeue stream, atomically.
#: KEYS: delayed, requeue. ARGV: now, limit, requeue cap.
PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, raw in ipairs(due) do
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', raw)
    redis.call('ZREM', KEYS[1], raw)
end
return #due
"""

#: Acknowledge handled entries (of several inboxes, one XACK each), remember de-duplicated ids,
#: and write one ``delivered`` event. KEYS: events, n streams, done keys. ARGV: n, group, time,
#: batch JSON, events cap, de-dupe TTL, then for each stream the count of its ids and the ids.
ACK = """
local n = tonumber(ARGV[1])
local at = 7
for i = 1, n do
    local count = tonumber(ARGV[at])
    redis.call('XACK', KEYS[1 + i], ARGV[2], unpack(ARGV, at + 1, at + count))
    at = at + 1 + count
end
for i = 2 + n, #KEYS do
    redis.call('SET', KEYS[i], '1', 'EX', ARGV[6])
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', 'status', 'delivered', 'at', ARGV[3],
    'batch', ARGV[4])
return n
"""

#: A failed attempt: queue the next one, acknowledge this one, write a ``failed`` event.
#: KEYS: delayed, stream, events. ARGV: group, entry id, next attempt's JSON, when due, time,
#: batch JSON, error, events cap.
FAIL = """
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 'status', 'failed', 'at', ARGV[5],
    'batch', ARGV[6], 'error', ARGV[7])
return 1
"""

#: Dead-letter an entry: the dead letter, its acknowledgement and a ``dead`` event.
#: KEYS: dead, stream, events. ARGV: group, entry id, time, batch JSON, reason, events cap,
#: dead-letters cap, then the dead letter's field/value pairs.
DEAD = """
local letter = {}
for i = 8, #ARGV do letter[#letter + 1] = ARGV[i] end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[7], '*', unpack(letter))
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'status', 'dead', 'at', ARGV[3],
    'batch', ARGV[4], 'error', ARGV[5])
return 1
"""

#: Delete a consumer only when it has nothing pending: DELCONSUMER would drop its pending entries.
#: KEYS: stream. ARGV: group, consumer.
DELETE_IDLE_CONSUMER = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #pending == 0 then
    return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""

#: Replay one dead letter: only the caller whose XDEL removed it delivers it, so two replays of
#: one dead letter at once deliver it once. KEYS: dead, requeue, site events. ARGV: dead letter
#: id, the envelope's JSON, time, batch JSON, requeue cap. Returns 1 if delivered, else 0.
REPLAY_DEAD_LETTER = """
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[2])
redis.call('XADD', KEYS[3], '*', 'status', 'replayed', 'at', ARGV[3], 'batch', ARGV[4])
return 1
"""

#: Put envelopes (a replay of history) into b's requeue stream with one ``replayed`` event.
#: KEYS: requeue, site events. ARGV: time, batch JSON, requeue cap, then the envelopes' JSON.
REQUEUE = """
for i = 4, #ARGV do
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[i])
end
redis.call('XADD', KEYS[2], '*', 'status', 'replayed', 'at', ARGV[1], 'batch', ARGV[2])
return #ARGV - 3
"""

#: Trim a stream by age (ARGV[2]: a minimum id, or '') and length (ARGV[1], or ''), never past
#: the first entry some consumer group still needs (its oldest pending entry, or the first it
#: has not been given: Redis 7.0 has no group-aware trim), nor past ARGV[3] when given (a
#: reader without a group, such as the recorder, keeps its place so). No entry crosses the
#: network. Returns {entries removed, that first needed id or '' when nothing bounds it}.
TRIM_STREAM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
-- Ids are compared as decimal strings (length, then text): a sequence number may exceed what a
-- Lua number holds exactly, and one chosen by a hostile sender must not break the trim.
local function parse(id)
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    return {ms, seq}
end
local function lt(a, b)
    if #a ~= #b then return #a < #b end
    return a < b
end
local function before(a, b) return lt(a[1], b[1]) or (a[1] == b[1] and lt(a[2], b[2])) end
local function text(id) return id[1] .. '-' .. id[2] end
local safe = nil
if ARGV[3] ~= nil and ARGV[3] ~= '' then safe = parse(ARGV[3]) end
for _, raw in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local group = {}
    for i = 1, #raw, 2 do group[raw[i]] = raw[i + 1] end
    -- The first entry the group has not been given (none: it needs nothing new).
    local after = '(' .. group['last-delivered-id']
    local first_new = redis.call('XRANGE', KEYS[1], after, '+', 'COUNT', 1)
    if #first_new > 0 then
        local id = parse(first_new[1][1])
        if safe == nil or before(id, safe) then safe = id end
    end
    if group['pending'] > 0 then
        local oldest = parse(redis.call('XPENDING', KEYS[1], group['name'])[2])
        if safe == nil or before(oldest, safe) then safe = oldest end
    end
end
local removed = 0
if ARGV[2] ~= '' then
    local bound = parse(ARGV[2])
    if safe ~= nil and before(safe, bound) then bound = safe end
    removed = removed + redis.call('XTRIM', KEYS[1], 'MINID', text(bound))
end
if ARGV[1] ~= '' then
    local maxlen = tonumber(ARGV[1])
    -- MAXLEN keeps the newest entries: safe when all that is needed is among them.
    if safe == nil
        or #redis.call('XRANGE', KEYS[1], text(safe), '+', 'COUNT', maxlen + 1) <= maxlen then
        removed = removed + redis.call('XTRIM', KEYS[1], 'MAXLEN', maxlen)
    else
        removed = removed + redis.call('XTRIM', KEYS[1], 'MINID', text(safe))
    end
end
if safe == nil then return {removed, ''} end
return {removed, text(safe)}
"""


#: The scripts agents run, by SHA (EVALSHA): the site loads them on every node (an agent may not).
AGENT_SCRIPTS = (PROMOTE, ACK, FAIL, DEAD, DELETE_IDLE_CONSUMER, TRIM_STREAM)


def trim_arguments(
    maxlen: int | None, max_age: float | None, keep_from: str | None = None
) -> list[str]:
    """``TRIM_STREAM``'s ARGV for a length and an age (seconds), either may be None, and the
    first entry a reader without a group still needs."""
    return [
        "" if maxlen is None else str(maxlen),
        "" if max_age is None else f"{int((time.time() - max_age) * 1000)}-0",
        keep_from or "",
    ]


def parse_stream_id(raw: str | bytes) -> tuple[int, int]:
    """A stream entry id ("1764161234567-3") as (milliseconds, sequence), for comparing."""
    ms, _, seq = as_text(raw).partition("-")
    return int(ms), int(seq or 0)


__all__ = [
    "ACK",
    "AGENTS",
    "AGENT_NAME",
    "AGENT_NAME_PATTERN",
    "AGENT_SCRIPTS",
    "ANSWER_NONCE",
    "ANSWER_NONCE_PATTERN",
    "ANSWER_SIGNATURE_ALGORITHM",
    "DEAD",
    "DELETE_IDLE_CONSUMER",
    "ENVELOPE_FIELDS",
    "FAIL",
    "GROUP",
    "HEAD_FIELDS",
    "LATEST_TIME",
    "LOG_COLUMNS",
    "MESSAGE_ID",
    "MESSAGE_TYPE",
    "NOTICES",
    "PROMOTE",
    "PROTOCOL_VERSION",
    "REDIS_SCHEMES",
    "REPLAY_DEAD_LETTER",
    "REPLY_TYPE",
    "REQUEUE",
    "SEALING_ALGORITHM",
    "SECRETS_API_PATH",
    "SECRETS_ROTATION_CHANNEL",
    "STATUSES",
    "TRACEPARENT",
    "TRIM_STREAM",
    "DeadLetter",
    "Envelope",
    "MalformedMessage",
    "RotationNotice",
    "SecretAnswer",
    "StatusEvent",
    "acl_rules",
    "acl_user",
    "agent_key",
    "as_text",
    "dead_letters",
    "delayed",
    "done_key",
    "dump_json",
    "events",
    "generate_keypair",
    "inbox",
    "inbox_sender",
    "is_cluster",
    "load_public_key",
    "load_site_public_key",
    "new_id",
    "new_ids",
    "new_nonce",
    "node_url",
    "open_sealed",
    "parse_stream_id",
    "redacted_url",
    "requeue",
    "seal",
    "sealing_context",
    "site_events",
    "status_event",
    "trim_arguments",
]
