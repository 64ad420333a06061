"""``Messaging``: reliable agent-to-agent messages on Redis Streams.

Delivery is at least once and nothing is lost:

- ``send`` appends the envelope to the receiver's inbox and a ``sent`` event, in one transaction.
- A consumer reads its inbox in the group ``agents`` and acknowledges an entry only after its
  handler returned. A failure re-queues the next attempt in a delayed set (exponential backoff)
  and acknowledges the original in the same transaction; after ``max_attempts`` the message goes
  to the dead-letter stream instead, again in one transaction.
- Entries left pending by a consumer that died are claimed by another after the visibility
  timeout (XAUTOCLAIM); one delivered more than ``max_attempts`` times (a message that kills its
  consumer) is dead-lettered rather than delivered again.
- An entry that is not an envelope is dead-lettered with the reason and never stops the loop.
- Streams are trimmed by length or age, never past an entry some group has not acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from foundation_client._config import ClientSettings
from foundation_client._envelope import (
    AGENTS,
    DEAD_LETTERS,
    EVENTS,
    GROUP,
    MESSAGE_TYPE,
    REPLY_TYPE,
    Envelope,
    MalformedMessage,
    as_text,
    delayed,
    done_key,
    dump_json,
    event_fields,
    inbox,
    new_id,
    new_ids,
)
from foundation_client._exceptions import MessageRejected, RequestTimeout
from foundation_client._redis import connect
from foundation_client._wire import AGENT_NAME

logger = logging.getLogger("foundation_client.messaging")

Handler = Callable[[Envelope], Awaitable[None]]

# Move due retries from the delayed set into the inbox, atomically (nothing lost, nothing twice).
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, raw in ipairs(due) do
    redis.call('XADD', KEYS[2], '*', 'e', raw)
    redis.call('ZREM', KEYS[1], raw)
end
return #due
"""

# Append a batch of envelopes to their inboxes and one events entry listing them, atomically and
# in one round trip (a MULTI would cost one reply per command). KEYS: events, then one inbox per
# envelope; ARGV: status, time, the batch's JSON, then one envelope JSON per inbox.
_SEND = """
for i = 2, #KEYS do
    redis.call('XADD', KEYS[i], '*', 'e', ARGV[i + 2])
end
redis.call('XADD', KEYS[1], '*', 'status', ARGV[1], 'at', ARGV[2], 'batch', ARGV[3])
return #KEYS - 1
"""

# Delete a consumer only when it has nothing pending: DELCONSUMER would drop its pending entries.
_DELETE_IDLE_CONSUMER = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #pending == 0 then
    return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""


@dataclass(frozen=True)
class MessagingConfig:
    """Delivery settings; the defaults suit most agents."""

    max_attempts: int = 5
    backoff_base: float = 0.5  # seconds before attempt 2; doubles each time
    backoff_max: float = 60.0
    visibility_timeout: float = 30.0  # pending this long without an ack: reclaimed
    batch: int = 100
    block_ms: int = 1000
    max_payload_bytes: int = 256 * 1024
    retention_maxlen: int | None = 100_000
    retention_age: float | None = None  # seconds
    trim_every: float = 30.0
    sweep_every: float = 0.1  # how often due retries and dead consumers' entries are looked for
    dedupe_ttl: int = 86_400

    def backoff(self, attempt: int) -> float:
        """Delay before ``attempt`` (2, 3, ...)."""
        return float(min(self.backoff_max, self.backoff_base * 2 ** max(0, attempt - 2)))


class Messaging:
    """Send and receive messages as one agent. Use as ``async with``."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        config: MessagingConfig | None = None,
        redis: aioredis.Redis | None = None,
        consumer_name: str | None = None,
    ) -> None:
        self.settings = settings
        self.agent = settings.agent_name
        self.config = config or MessagingConfig()
        # Typed loosely: redis-py's stream replies are nested unions the code below unpacks.
        self._redis: Any = redis or connect(settings.redis_url)
        self._owns_redis = redis is None
        self.consumer = consumer_name or (
            f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        self._handlers: dict[str, tuple[Handler, bool]] = {}
        self._waiting: dict[str, asyncio.Future[Envelope]] = {}
        self._valid_routes: set[tuple[str, str]] = set()
        self._prefetched: list[tuple[bytes, dict[Any, Any], int]] = []
        self._ready = False
        self._last_trim = 0.0
        self._last_sweep = 0.0
        self._promote = self._redis.register_script(_PROMOTE)
        self._send = self._redis.register_script(_SEND)
        self._delete_consumer = self._redis.register_script(_DELETE_IDLE_CONSUMER)

    async def __aenter__(self) -> Messaging:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- set-up --------------------------------------------------------------------------------
    def on(self, message_type: str, handler: Handler, *, dedupe: bool = False) -> None:
        """Handle ``message_type`` with ``handler`` (an async function taking the envelope).

        With ``dedupe``, a message id already handled successfully is acknowledged without
        running the handler again (a replay, a producer's retry, a redelivery after the ack was
        lost), for ``dedupe_ttl`` seconds.
        """
        self._handlers[message_type] = (handler, dedupe)

    def handler(self, message_type: str, *, dedupe: bool = False) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.on(message_type, fn, dedupe=dedupe)
            return fn

        return register

    async def start(self) -> None:
        """Create this agent's inbox and group, and clean up consumers that died idle."""
        if self._ready:
            return
        stream = inbox(self.agent)
        try:
            await self._redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await self._redis.sadd(AGENTS, self.agent)
        await self._forget_dead_consumers(stream)
        self._ready = True

    async def close(self) -> None:
        if self._ready:
            with contextlib.suppress(RedisError):
                await self._delete_consumer(keys=[inbox(self.agent)], args=[GROUP, self.consumer])
        for future in self._waiting.values():
            future.cancel()
        if self._owns_redis:
            await self._redis.aclose()

    async def _forget_dead_consumers(self, stream: str) -> None:
        """Consumer names never pile up: a consumer idle for twice the visibility timeout with
        nothing pending is deleted. One with pending entries is kept until they are reclaimed."""
        idle_ms = int(self.config.visibility_timeout * 2000)
        for info in await self._redis.xinfo_consumers(stream, GROUP):
            name = as_text(info["name"])
            if name != self.consumer and info["pending"] == 0 and info["idle"] > idle_ms:
                await self._delete_consumer(keys=[stream], args=[GROUP, name])

    # --- sending -------------------------------------------------------------------------------
    def _envelope(
        self,
        to_agent: str,
        message_type: str,
        payload: Any,
        correlation_id: str | None,
        reply_to: str | None = None,
        message_id: str | None = None,
    ) -> Envelope:
        if (
            type(to_agent) is not str
            or type(message_type) is not str
            or (to_agent, message_type) not in self._valid_routes
        ):
            self._check_route(to_agent, message_type)
        try:
            text = dump_json(payload)
        except TypeError as exc:
            raise MessageRejected(f"payload is not JSON-serialisable: {exc}") from None
        if len(text) > self.config.max_payload_bytes:
            raise MessageRejected(
                f"payload is {len(text)} bytes; the limit is {self.config.max_payload_bytes}"
            )
        return Envelope(
            sender=self.agent,
            receiver=to_agent,
            type=message_type,
            payload=payload,
            id=message_id or new_id(),
            correlation_id=correlation_id,
            reply_to=reply_to,
            payload_json=text,
        )

    def _check_route(self, to_agent: str, message_type: str) -> None:
        """Refuse a receiver or type that is not a plain token; remember the good pairs (an agent
        sends to few), so a batch checks each once."""
        if not isinstance(to_agent, str) or not AGENT_NAME.match(to_agent):
            raise MessageRejected(f"{to_agent!r} is not an agent name")
        if not isinstance(message_type, str) or not MESSAGE_TYPE.match(message_type):
            raise MessageRejected(
                f"{message_type!r} is not a message type (1-50 of A-Z a-z 0-9 _ . : -)"
            )
        if len(self._valid_routes) >= 4096:
            self._valid_routes.clear()
        self._valid_routes.add((to_agent, message_type))

    async def send(
        self, to_agent: str, message_type: str, payload: Any, correlation_id: str | None = None
    ) -> str:
        """Send one message; return its id. Refused at once (``MessageRejected``): a payload JSON
        cannot hold, or one too big (see ``dump_json`` for what JSON holds)."""
        return (await self.send_many([(to_agent, message_type, payload, correlation_id)]))[0]

    async def send_many(self, messages: list[tuple[str, str, Any, str | None]]) -> list[str]:
        """Send a batch in one transaction (all or nothing), with one ``sent`` event per message."""
        # One read of the system's random source for the batch's ids, not one per message.
        ids = new_ids(len(messages))
        envelopes = [
            self._envelope(to, kind, payload, correlation, None, ids[i])
            for i, (to, kind, payload, correlation) in enumerate(messages)
        ]
        return await self._write(envelopes)

    async def _write(self, envelopes: list[Envelope], status: str = "sent") -> list[str]:
        """The envelopes and one events entry listing them all, in one atomic script."""
        # The events entry lists the envelopes themselves: the recorder needs what they hold.
        texts = [e.to_json() for e in envelopes]
        await self._send(
            keys=[EVENTS, *(inbox(e.receiver) for e in envelopes)],
            args=[status, repr(time.time()), b"[" + b",".join(texts) + b"]", *texts],
        )
        return [envelope.id for envelope in envelopes]

    async def broadcast(self, message_type: str, payload: Any) -> list[str]:
        """Send to every agent that consumes (except this one)."""
        members = await self._redis.smembers(AGENTS)
        targets = sorted(name for name in map(as_text, members) if name != self.agent)
        return await self.send_many([(name, message_type, payload, None) for name in targets])

    async def request(
        self, to_agent: str, message_type: str, payload: Any, *, timeout: float = 5.0
    ) -> Envelope:
        """Send and wait for the reply (the receiver calls ``reply``). This agent's consume loop
        must be running, since the reply arrives in its inbox."""
        envelope = self._envelope(to_agent, message_type, payload, None, reply_to=self.agent)
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        self._waiting[envelope.id] = future
        try:
            await self._write([envelope])
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RequestTimeout(
                f"no reply from {to_agent!r} to {message_type!r} within {timeout}s"
            ) from None
        finally:
            self._waiting.pop(envelope.id, None)

    async def reply(self, request: Envelope, payload: Any) -> str:
        if not request.reply_to:
            raise MessageRejected("this message expects no reply")
        envelope = self._envelope(request.reply_to, REPLY_TYPE, payload, request.id)
        return (await self._write([envelope]))[0]

    # --- consuming -----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set. Redis errors are logged and retried, never fatal."""
        await self.start()
        stop = stop or asyncio.Event()
        delay = 0.5
        while not stop.is_set() or self._prefetched:
            try:
                await self.process_once(prefetch=not stop.is_set())
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if stop.is_set():
                    # Stopping with Redis away: what was read ahead stays pending and goes to
                    # another consumer after the visibility timeout.
                    self._prefetched = []
                    return
                logger.warning("messaging loop: %s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def process_once(self, block_ms: int | None = None, *, prefetch: bool = False) -> int:
        """One round: due retries, reclaimed entries, new entries. Returns entries handled.

        With ``prefetch`` (what ``run`` does), the acknowledgement of this round's entries also
        reads the next batch, in one round trip, to be handled first in the next round. A
        caller that prefetches must call again until nothing is left read ahead: entries read
        and never handled wait for the visibility timeout.
        """
        await self.start()
        stream = inbox(self.agent)
        now = time.monotonic()
        # Retries and reclaims are looked for a few times a second, not on every round: on a
        # busy inbox every round would otherwise cost two more round trips.
        entries: list[tuple[bytes, dict[Any, Any], int]] = []
        if now - self._last_sweep >= self.config.sweep_every:
            self._last_sweep = now
            await self._promote(
                keys=[delayed(self.agent), stream], args=[repr(time.time()), self.config.batch]
            )
            entries = await self._reclaim(stream)
        if not entries and self._prefetched:
            entries, self._prefetched = self._prefetched, []
        elif not entries:
            block = self.config.block_ms if block_ms is None else block_ms
            response = await self._redis.xreadgroup(
                GROUP, self.consumer, {stream: ">"}, count=self.config.batch, block=block or None
            )
            entries = _unpack(response)
        if entries:
            done = await self._handle(stream, entries)
            more = prefetch and not self._prefetched
            if done or more:
                await self._ack(stream, done, prefetch=more)
        if time.monotonic() - self._last_trim > self.config.trim_every:
            self._last_trim = time.monotonic()
            await trim_stream(
                self._redis,
                stream,
                maxlen=self.config.retention_maxlen,
                max_age=self.config.retention_age,
            )
        return len(entries)

    async def _reclaim(self, stream: str) -> list[tuple[bytes, dict[Any, Any], int]]:
        idle_ms = int(self.config.visibility_timeout * 1000)
        result = await self._redis.xautoclaim(
            stream, GROUP, self.consumer, idle_ms, "0-0", count=self.config.batch
        )
        claimed = [(entry_id, fields) for entry_id, fields in result[1] if fields]
        if not claimed:
            return []
        # Each entry's delivery count (a message that kills consumers is dead-lettered by it),
        # in one round trip.
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id, _ in claimed:
                pipe.xpending_range(stream, GROUP, entry_id, entry_id, 1)
            counts = await pipe.execute()
        out = [
            (entry_id, fields, int(info[0]["times_delivered"]) if info else 1)
            for (entry_id, fields), info in zip(claimed, counts, strict=True)
        ]
        logger.info("reclaimed %d entries left pending by a dead consumer", len(out))
        return out

    async def _handle(
        self, stream: str, entries: list[tuple[bytes, dict[Any, Any], int]]
    ) -> list[tuple[bytes, Envelope, bool]]:
        """Run the handlers; failures and dead letters are settled here, one by one. Returns
        the entries to acknowledge."""
        keeper = asyncio.create_task(self._keep_claimed(stream, [e[0] for e in entries]))
        try:
            return await self._handle_all(stream, entries)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_claimed(self, stream: str, entry_ids: list[bytes]) -> None:
        """While a batch is in hand, claim its entries (and those read ahead) again every third
        of the visibility timeout: slow handlers (an LLM call can take minutes) must not make
        this live consumer look dead to the others. XCLAIM resets an entry's idle time, JUSTID
        leaves its delivery count alone, and entries already acknowledged are not claimed."""
        while True:
            await asyncio.sleep(self.config.visibility_timeout / 3)
            ids = entry_ids + [entry[0] for entry in self._prefetched]
            try:
                await self._redis.xclaim(stream, GROUP, self.consumer, 0, ids, justid=True)
            except RedisError as exc:
                logger.warning("could not extend the claim on %d entries: %s", len(ids), exc)

    async def _handle_all(
        self, stream: str, entries: list[tuple[bytes, dict[Any, Any], int]]
    ) -> list[tuple[bytes, Envelope, bool]]:
        parsed: list[tuple[bytes, dict[Any, Any], int, Envelope | MalformedMessage]] = []
        for entry_id, fields, deliveries in entries:
            try:
                parsed.append((entry_id, fields, deliveries, Envelope.from_entry(fields)))
            except MalformedMessage as exc:
                parsed.append((entry_id, fields, deliveries, exc))
        handled_before = await self._handled_before(parsed)
        done: list[tuple[bytes, Envelope, bool]] = []
        for entry_id, fields, deliveries, envelope in parsed:
            if isinstance(envelope, MalformedMessage):
                await self._dead(stream, entry_id, None, f"malformed entry: {envelope}", fields)
                continue
            if deliveries > self.config.max_attempts:
                await self._dead(
                    stream,
                    entry_id,
                    envelope,
                    f"delivered {deliveries} times without an acknowledgement",
                    None,
                )
                continue
            if envelope.type == REPLY_TYPE:
                waiting = self._waiting.get(envelope.correlation_id or "")
                if waiting is not None and not waiting.done():
                    waiting.set_result(envelope)
                done.append((entry_id, envelope, False))
                continue
            registered = self._handlers.get(envelope.type)
            if registered is None:
                await self._dead(
                    stream, entry_id, envelope, f"no handler for type {envelope.type!r}", None
                )
                continue
            handler, dedupe = registered
            if dedupe and envelope.id in handled_before:
                done.append((entry_id, envelope, False))
                continue
            try:
                await handler(envelope)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._failed(stream, entry_id, envelope, f"{type(exc).__name__}: {exc}")
            else:
                done.append((entry_id, envelope, dedupe))
        return done

    async def _handled_before(
        self, parsed: list[tuple[bytes, dict[Any, Any], int, Envelope | MalformedMessage]]
    ) -> set[str]:
        """The ids, among the batch's messages for de-duplicating handlers, already handled
        successfully: one MGET for the batch."""
        ids = [
            envelope.id
            for _, _, _, envelope in parsed
            if isinstance(envelope, Envelope)
            and self._handlers.get(envelope.type, (None, False))[1]
        ]
        if not ids:
            return set()
        found = await self._redis.mget([done_key(self.agent, message_id) for message_id in ids])
        return {message_id for message_id, value in zip(ids, found, strict=True) if value}

    async def _ack(
        self, stream: str, done: list[tuple[bytes, Envelope, bool]], *, prefetch: bool
    ) -> None:
        """Acknowledge ``done`` with their ``delivered`` event in one transaction; with
        ``prefetch``, read the next batch in the same round trip (without blocking)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            if done:
                pipe.xack(stream, GROUP, *[entry_id for entry_id, _, _ in done])
                for _, envelope, dedupe in done:
                    if dedupe:
                        pipe.set(done_key(self.agent, envelope.id), b"1", ex=self.config.dedupe_ttl)
                batch = [
                    {
                        "id": e.id,
                        "sender": e.sender,
                        "receiver": e.receiver,
                        "type": e.type,
                        "correlation_id": e.correlation_id or "",
                        "attempt": e.attempt,
                    }
                    for _, e, _ in done
                ]
                pipe.xadd(
                    EVENTS,
                    {"status": "delivered", "at": repr(time.time()), "batch": dump_json(batch)},
                )
            if prefetch:
                pipe.xreadgroup(GROUP, self.consumer, {stream: ">"}, count=self.config.batch)
            results = await pipe.execute()
        if prefetch:
            self._prefetched = _unpack(results[-1])

    async def _failed(self, stream: str, entry_id: bytes, envelope: Envelope, error: str) -> None:
        if envelope.attempt >= self.config.max_attempts:
            await self._dead(stream, entry_id, envelope, error, None)
            return
        retry = envelope.next_attempt()
        due = time.time() + self.config.backoff(retry.attempt)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(delayed(self.agent), {retry.to_json(): due})
            pipe.xack(stream, GROUP, entry_id)
            pipe.xadd(EVENTS, event_fields("failed", envelope, error=error))
            await pipe.execute()
        logger.warning(
            "message %s (%s) failed, attempt %d: %s",
            envelope.id,
            envelope.type,
            envelope.attempt,
            error,
        )

    async def _dead(
        self,
        stream: str,
        entry_id: bytes,
        envelope: Envelope | None,
        reason: str,
        raw: dict[Any, Any] | None,
    ) -> None:
        entry = entry_id.decode()
        fields: dict[str, str] = {
            "reason": reason[:2000],
            "stream": stream,
            "entry_id": entry,
            "dead_at": repr(time.time()),
        }
        if envelope is not None:
            fields.update(envelope.to_fields())
        elif raw is not None:
            fields["raw"] = json.dumps({as_text(k): as_text(v) for k, v in raw.items()})[:65536]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(DEAD_LETTERS, fields)
            pipe.xack(stream, GROUP, entry_id)
            pipe.xadd(
                EVENTS,
                event_fields("dead", envelope, error=reason, message_id=entry),
            )
            await pipe.execute()
        logger.warning("dead-lettered %s: %s", entry, reason)


# Trim a stream by age (ARGV[2]: a minimum id, or '') and length (ARGV[1], or ''), never past the
# first entry some consumer group still needs: its oldest pending entry, or the first it has not
# been given (Redis 7.0 has no group-aware trim). All in Redis: no entry crosses the network.
# Returns {entries removed, that first needed id or '' when no group reads the stream}.
TRIM_STREAM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
local function parse(id)
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    return {tonumber(ms), tonumber(seq), ms}
end
local function before(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end
local function text(id) return id[3] .. '-' .. string.format('%d', id[2]) end
local safe = nil
for _, raw in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local group = {}
    for i = 1, #raw, 2 do group[raw[i]] = raw[i + 1] end
    local first_new = parse(group['last-delivered-id'])
    first_new[2] = first_new[2] + 1
    if safe == nil or before(first_new, safe) then safe = first_new end
    if group['pending'] > 0 then
        local oldest = parse(redis.call('XPENDING', KEYS[1], group['name'])[2])
        if before(oldest, safe) then safe = oldest end
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


def trim_arguments(maxlen: int | None, max_age: float | None) -> list[str]:
    """``TRIM_STREAM``'s ARGV for a length and an age (seconds), either may be None."""
    return [
        "" if maxlen is None else str(maxlen),
        "" if max_age is None else f"{int((time.time() - max_age) * 1000)}-0",
    ]


async def trim_stream(
    redis: Any, stream: str, *, maxlen: int | None = None, max_age: float | None = None
) -> int:
    """Trim by length and/or age, never past an entry a consumer group still needs; returns how
    many entries went."""
    if maxlen is None and max_age is None:
        return 0
    script = redis.register_script(TRIM_STREAM)
    removed, _ = await script(keys=[stream], args=trim_arguments(maxlen, max_age))
    return int(removed)


def _unpack(response: Any) -> list[tuple[bytes, dict[Any, Any], int]]:
    """XREADGROUP's reply as (entry id, fields, deliveries so far) for ``_handle``."""
    return [(entry_id, fields, 1) for _, batch in response or [] for entry_id, fields in batch]
