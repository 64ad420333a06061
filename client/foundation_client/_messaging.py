"""``Messaging``: reliable agent-to-agent messages on Redis Streams, with senders that cannot be
forged.

Delivery is at least once and nothing is lost:

- ``send`` appends the envelope to ``fdn:in:<sender>:{<receiver>}``, a stream only the sender's
  Redis user may append to; the receiver takes the sender from the key, so it cannot be forged.
- A consumer reads all its inboxes (one per registered sender) and its requeue stream in one
  XREADGROUP, in the group ``agents``, and acknowledges an entry only after its handler
  returned. A failure queues the next attempt in its delayed set (exponential backoff) and
  acknowledges the original in one script; after ``max_attempts`` the message goes to its
  dead letters instead, again in one script. Every script touches one agent's keys: one slot.
- Entries left pending by a consumer that died are claimed by another after the visibility
  timeout (XAUTOCLAIM); one delivered more than ``max_attempts`` times (a message that kills its
  consumer) is dead-lettered rather than delivered again.
- An entry that is not an envelope, or whose envelope names another sender than its stream,
  is dead-lettered with the reason and never stops the loop.
- Every stream is bounded: inboxes by the sender's ``XADD MAXLEN ~`` and the recorder's
  group-safe trim, the requeue stream by this client's group-safe trim, events and dead letters
  by ``MAXLEN ~``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, NoScriptError, RedisError, ResponseError

from foundation_client import protocol as wire
from foundation_client._config import ClientSettings
from foundation_client._exceptions import (
    MalformedMessage,
    MessageRejected,
    RequestTimeout,
    WireUnavailable,
)
from foundation_client.connections import connect, send_batch
from foundation_client.protocol import AGENT_NAME, MESSAGE_ID, MESSAGE_TYPE, TRACEPARENT, Envelope
from foundation_client.util import as_text, dump_json, new_id, new_ids

_M = TypeVar("_M", bound=Callable[..., Awaitable[Any]])

logger = logging.getLogger("foundation_client.messaging")

Handler = Callable[[Envelope], Awaitable[None]]


def _wire_errors(method: _M) -> _M:
    """Redis' errors out of a public method as :class:`WireUnavailable` (the redis-py error its
    ``__cause__``), so that an agent catches one tree, ``FoundationError``."""

    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except RedisError as exc:
            raise WireUnavailable(f"Redis refused or could not answer: {exc}") from exc

    return wrapper  # type: ignore[return-value]


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
    #: Backstop on every inbox this agent sends to (``XADD MAXLEN ~``): an inbox nobody reads
    #: stays bounded. Routine retention is the recorder's group-safe trim.
    inbox_maxlen: int = 1_000_000
    events_maxlen: int = 100_000
    dead_maxlen: int = 10_000
    requeue_maxlen: int = 100_000
    retention_age: float | None = None  # seconds, for the requeue stream
    trim_every: float = 30.0
    sweep_every: float = 0.1  # how often due retries and dead consumers' entries are looked for
    refresh_every: float = 5.0  # how often the registry is read for new senders
    dedupe_ttl: int = 86_400

    def backoff(self, attempt: int) -> float:
        """Delay before ``attempt`` (2, 3, ...)."""
        return float(min(self.backoff_max, self.backoff_base * 2 ** max(0, attempt - 2)))


@dataclass(slots=True)
class _Entry:
    """One stream entry in hand: which stream, its id, its fields, how often delivered."""

    stream: bytes
    entry_id: bytes
    fields: dict[Any, Any]
    deliveries: int = 1


class _Scripts:
    """The protocol's Lua scripts, called by SHA (EVALSHA) and loaded again when Redis forgot
    them (a restart, a failover)."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self.promote = redis.register_script(wire.PROMOTE)
        self.ack = redis.register_script(wire.ACK)
        self.fail = redis.register_script(wire.FAIL)
        self.dead = redis.register_script(wire.DEAD)
        self.delete_consumer = redis.register_script(wire.DELETE_IDLE_CONSUMER)
        self.trim = redis.register_script(wire.TRIM_STREAM)


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
        # Pending requests: correlation id -> (future, the agent the request went to).
        self._waiting: dict[str, tuple[asyncio.Future[Envelope], str]] = {}
        self._valid_routes: set[tuple[str, str]] = set()
        self._prefetched: list[_Entry] = []
        self._ready = False
        self._last_trim = 0.0
        self._last_sweep = 0.0
        self._last_refresh = 0.0
        self._requeue = wire.requeue(self.agent).encode()
        # The streams read, each with the sender its key proves (None: the requeue stream,
        # written only by this agent and the site).
        self._sources: dict[bytes, str | None] = {self._requeue: None}
        self._registered: set[str] = set()
        self._scripts = _Scripts(self._redis)

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

    @_wire_errors
    async def start(self) -> None:
        """Check that the site serves this client's protocol version, create this agent's
        groups on its inboxes and clean up consumers that died idle."""
        if self._ready:
            return
        await self._check_protocol()
        await self._ensure_group(self._requeue)
        await self._refresh_senders()
        for stream in self._sources:
            await self._forget_dead_consumers(stream)
        self._ready = True

    async def close(self) -> None:
        if self._ready:
            with contextlib.suppress(RedisError):
                for stream in self._sources:
                    await self._scripts.delete_consumer(
                        keys=[stream], args=[wire.GROUP, self.consumer]
                    )
        for future, _ in self._waiting.values():
            future.cancel()
        if self._owns_redis:
            await self._redis.aclose()

    async def _check_protocol(self) -> None:
        """Refuse to start (``ProtocolMismatch``) when the site serves a range of versions
        without this client's. A site that publishes none predates the range (version 2, whose
        ACL does not let an agent read the key): nothing to check against, so it is logged."""
        try:
            published = await self._redis.get(wire.PROTOCOL_KEY)
        except NoPermissionError:
            published = None
        wire.check_site(published)

    async def _ensure_group(self, stream: bytes) -> None:
        try:
            await self._redis.xgroup_create(stream, wire.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _refresh_senders(self) -> None:
        """Read the registry: an inbox for each registered agent (and this one), its group made
        at the start of the stream, so what was sent before is not missed."""
        self._last_refresh = time.monotonic()
        names = {as_text(n) for n in await self._redis.smembers(wire.AGENTS)} | {self.agent}
        self._registered = names
        for sender in sorted(names):
            stream = wire.inbox(self.agent, sender).encode()
            if stream not in self._sources and AGENT_NAME.match(sender):
                await self._ensure_group(stream)
                self._sources[stream] = sender

    async def _forget_dead_consumers(self, stream: bytes) -> None:
        """Consumer names never pile up: a consumer idle for twice the visibility timeout with
        nothing pending is deleted. One with pending entries is kept until they are reclaimed."""
        idle_ms = int(self.config.visibility_timeout * 2000)
        for info in await self._redis.xinfo_consumers(stream, wire.GROUP):
            name = as_text(info["name"])
            if name != self.consumer and info["pending"] == 0 and info["idle"] > idle_ms:
                await self._scripts.delete_consumer(keys=[stream], args=[wire.GROUP, name])

    # --- sending -------------------------------------------------------------------------------
    def _envelope(
        self,
        to_agent: str,
        message_type: str,
        payload: Any,
        correlation_id: str | None,
        *,
        reply_to: str | None = None,
        message_id: str | None = None,
        traceparent: str | None = None,
    ) -> Envelope:
        if (
            type(to_agent) is not str
            or type(message_type) is not str
            or (to_agent, message_type) not in self._valid_routes
        ):
            self._check_route(to_agent, message_type)
        if correlation_id is not None and not (
            isinstance(correlation_id, str) and MESSAGE_ID.fullmatch(correlation_id)
        ):
            raise MessageRejected(
                f"{correlation_id!r} is not a correlation id (1-100 of A-Z a-z 0-9 _ . -)"
            )
        if traceparent is not None and not (
            isinstance(traceparent, str) and TRACEPARENT.fullmatch(traceparent)
        ):
            raise MessageRejected(f"{traceparent!r} is not a W3C traceparent")
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
            traceparent=traceparent,
            payload_json=text,
        )

    def _check_route(self, to_agent: str, message_type: str) -> None:
        """Refuse a receiver or type that is not a plain token; remember the good pairs (an agent
        sends to few), so a batch checks each once."""
        if not isinstance(to_agent, str) or not AGENT_NAME.match(to_agent):
            raise MessageRejected(f"{to_agent!r} is not an agent name")
        if not isinstance(message_type, str) or not MESSAGE_TYPE.fullmatch(message_type):
            raise MessageRejected(
                f"{message_type!r} is not a message type (1-50 of A-Z a-z 0-9 _ . : -)"
            )
        if len(self._valid_routes) >= 4096:
            self._valid_routes.clear()
        self._valid_routes.add((to_agent, message_type))

    @_wire_errors
    async def send(
        self,
        to_agent: str,
        message_type: str,
        payload: Any,
        correlation_id: str | None = None,
        *,
        traceparent: str | None = None,
    ) -> str:
        """Send one message; return its id. Refused at once (``MessageRejected``): a payload JSON
        cannot hold, or one too big (see ``dump_json`` for what JSON holds)."""
        envelope = self._envelope(
            to_agent, message_type, payload, correlation_id, traceparent=traceparent
        )
        return (await self._write([envelope]))[0]

    @_wire_errors
    async def send_many(
        self, messages: list[tuple[str, str, Any, str | None]], *, ids: list[str] | None = None
    ) -> list[str]:
        """Send a batch in one round trip; return the ids. Everything is checked before anything
        is written. If this raises after the check (Redis went away), some messages may have
        been written: send the batch again with the same ``ids`` and receivers that
        de-duplicate handle each once."""
        if ids is not None and len(ids) != len(messages):
            raise MessageRejected("give one id per message")
        # One read of the system's random source for the batch's ids, not one per message.
        chosen = ids or new_ids(len(messages))
        envelopes = [
            self._envelope(to, kind, payload, correlation, message_id=chosen[i])
            for i, (to, kind, payload, correlation) in enumerate(messages)
        ]
        return await self._write(envelopes)

    async def _write(self, envelopes: list[Envelope]) -> list[str]:
        """Append each envelope to its inbox: plain XADDs in one pipeline. The sender's user may
        only XADD there (a script would need read access to the key as well). Only registered
        agents are sent to: their inboxes are the ones read, recorded, trimmed and shown."""
        receivers = {envelope.receiver for envelope in envelopes}
        if not receivers <= self._registered:
            await self._refresh_senders()
            unknown = sorted(receivers - self._registered)
            if unknown:
                raise MessageRejected(f"not a registered agent: {', '.join(unknown)}")
        cap = self.config.inbox_maxlen
        await send_batch(
            self._redis,
            [
                (
                    "XADD",
                    wire.inbox(envelope.receiver, self.agent),
                    "MAXLEN",
                    "~",
                    cap,
                    "*",
                    "e",
                    envelope.to_json(),
                )
                for envelope in envelopes
            ],
        )
        return [envelope.id for envelope in envelopes]

    @_wire_errors
    async def broadcast(self, message_type: str, payload: Any) -> list[str]:
        """Send to every registered agent but this one."""
        members = await self._redis.smembers(wire.AGENTS)
        targets = sorted(name for name in map(as_text, members) if name != self.agent)
        return await self.send_many([(name, message_type, payload, None) for name in targets])

    @_wire_errors
    async def request(
        self,
        to_agent: str,
        message_type: str,
        payload: Any,
        *,
        timeout: float = 5.0,
        traceparent: str | None = None,
    ) -> Envelope:
        """Send and wait for the reply (the receiver calls ``reply``). This agent's consume loop
        must be running, since the reply arrives in its inbox. Only ``to_agent`` can answer: a
        reply from anyone else is dead-lettered as forged."""
        envelope = self._envelope(
            to_agent, message_type, payload, None, reply_to=self.agent, traceparent=traceparent
        )
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        self._waiting[envelope.id] = (future, to_agent)
        try:
            await self._write([envelope])
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RequestTimeout(
                f"no reply from {to_agent!r} to {message_type!r} within {timeout}s"
            ) from None
        finally:
            self._waiting.pop(envelope.id, None)

    @_wire_errors
    async def reply(self, request: Envelope, payload: Any) -> str:
        """Answer ``request``; the reply continues its trace."""
        if not request.reply_to:
            raise MessageRejected("this message expects no reply")
        envelope = self._envelope(
            request.reply_to,
            wire.REPLY_TYPE,
            payload,
            request.id,
            traceparent=request.traceparent,
        )
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
            except (WireUnavailable, OSError) as exc:  # process_once's Redis errors, as all
                if stop.is_set():
                    # Stopping with Redis away: what was read ahead stays pending and goes to
                    # another consumer after the visibility timeout.
                    self._prefetched = []
                    return
                logger.warning("messaging loop: %s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    @_wire_errors
    async def process_once(self, block_ms: int | None = None, *, prefetch: bool = False) -> int:
        """One round: due retries, reclaimed entries, new entries. Returns entries handled.

        With ``prefetch`` (what ``run`` does), the acknowledgement of this round's entries also
        reads the next batch, in one round trip, to be handled first in the next round. A
        caller that prefetches must call again until nothing is left read ahead: entries read
        and never handled wait for the visibility timeout.
        """
        await self.start()
        now = time.monotonic()
        if now - self._last_refresh >= self.config.refresh_every:
            await self._refresh_senders()
        # Retries and reclaims are looked for a few times a second, not on every round: on a
        # busy inbox every round would otherwise cost two more round trips.
        entries: list[_Entry] = []
        if now - self._last_sweep >= self.config.sweep_every:
            self._last_sweep = now
            await self._scripts.promote(
                keys=[wire.delayed(self.agent), self._requeue],
                args=[repr(time.time()), self.config.batch, self.config.requeue_maxlen],
            )
            entries = await self._reclaim()
        if not entries and self._prefetched:
            entries, self._prefetched = self._prefetched, []
        elif not entries:
            block = self.config.block_ms if block_ms is None else block_ms
            response = await self._redis.xreadgroup(
                wire.GROUP,
                self.consumer,
                dict.fromkeys(self._sources, ">"),
                count=self.config.batch,
                block=block or None,
            )
            entries = _unpack(response)
        if entries:
            done = await self._handle(entries)
            more = prefetch and not self._prefetched
            if done or more:
                await self._ack(done, prefetch=more)
        if time.monotonic() - self._last_trim > self.config.trim_every:
            self._last_trim = time.monotonic()
            await self._scripts.trim(
                keys=[self._requeue],
                args=wire.trim_arguments(self.config.requeue_maxlen, self.config.retention_age),
            )
        return len(entries)

    async def _reclaim(self) -> list[_Entry]:
        """Entries of every inbox left pending by a dead consumer, with their delivery counts
        (a message that kills consumers is dead-lettered by it): two pipelined round trips."""
        idle_ms = int(self.config.visibility_timeout * 1000)
        streams = list(self._sources)
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xautoclaim(
                    stream, wire.GROUP, self.consumer, idle_ms, "0-0", count=self.config.batch
                )
            results = await pipe.execute()
        claimed = [
            _Entry(stream, entry_id, fields)
            for stream, result in zip(streams, results, strict=True)
            for entry_id, fields in result[1]
            if fields
        ]
        if not claimed:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry in claimed:
                pipe.xpending_range(entry.stream, wire.GROUP, entry.entry_id, entry.entry_id, 1)
            counts = await pipe.execute()
        for entry, info in zip(claimed, counts, strict=True):
            entry.deliveries = int(info[0]["times_delivered"]) if info else 1
        logger.info("reclaimed %d entries left pending by a dead consumer", len(claimed))
        return claimed

    async def _handle(self, entries: list[_Entry]) -> list[tuple[_Entry, Envelope, bool]]:
        """Run the handlers; failures and dead letters are settled here, one by one. Returns
        the entries to acknowledge."""
        keeper = asyncio.create_task(self._keep_claimed(entries))
        try:
            return await self._handle_all(entries)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_claimed(self, entries: list[_Entry]) -> None:
        """While a batch is in hand, claim its entries (and those read ahead) again every third
        of the visibility timeout: slow handlers (an LLM call can take minutes) must not make
        this live consumer look dead to the others. XCLAIM resets an entry's idle time, JUSTID
        leaves its delivery count alone, and entries already acknowledged are not claimed."""
        while True:
            await asyncio.sleep(self.config.visibility_timeout / 3)
            by_stream: dict[bytes, list[bytes]] = {}
            for entry in entries + self._prefetched:
                by_stream.setdefault(entry.stream, []).append(entry.entry_id)
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for stream, ids in by_stream.items():
                        pipe.xclaim(stream, wire.GROUP, self.consumer, 0, ids, justid=True)
                    await pipe.execute()
            except RedisError as exc:
                logger.warning("could not extend the claim on a batch: %s", exc)

    def _parse(self, entry: _Entry) -> Envelope:
        """The entry's envelope, checked against what its stream proves: the sender of an inbox
        entry is the agent the key names; anything in this agent's streams is for this agent."""
        envelope = Envelope.from_entry(entry.fields)
        sender = self._sources.get(entry.stream)
        if sender is not None and envelope.sender != sender:
            raise MalformedMessage(
                f"forged sender: the envelope says {envelope.sender!r}, the stream is {sender!r}'s"
            )
        if envelope.receiver != self.agent:
            raise MalformedMessage(f"misdelivered: the envelope is for {envelope.receiver!r}")
        return envelope

    async def _handle_all(self, entries: list[_Entry]) -> list[tuple[_Entry, Envelope, bool]]:
        parsed: list[tuple[_Entry, Envelope | MalformedMessage]] = []
        for entry in entries:
            try:
                parsed.append((entry, self._parse(entry)))
            except MalformedMessage as exc:
                parsed.append((entry, exc))
        handled_before = await self._handled_before(parsed)
        done: list[tuple[_Entry, Envelope, bool]] = []
        for entry, envelope in parsed:
            if isinstance(envelope, MalformedMessage):
                await self._dead(entry, None, f"malformed entry: {envelope}")
                continue
            if entry.deliveries > self.config.max_attempts:
                reason = f"delivered {entry.deliveries} times without an acknowledgement"
                await self._dead(entry, envelope, reason)
                continue
            if envelope.type == wire.REPLY_TYPE:
                waiting = self._waiting.get(envelope.correlation_id or "")
                if waiting is not None and waiting[1] != envelope.sender:
                    reason = (
                        f"forged reply: from {envelope.sender!r} to a request sent to "
                        f"{waiting[1]!r}"
                    )
                    await self._dead(entry, envelope, reason)
                    continue
                if waiting is not None and not waiting[0].done():
                    waiting[0].set_result(envelope)
                done.append((entry, envelope, False))
                continue
            registered = self._handlers.get(envelope.type)
            if registered is None:
                await self._dead(entry, envelope, f"no handler for type {envelope.type!r}")
                continue
            handler, dedupe = registered
            if dedupe and (envelope.sender, envelope.id) in handled_before:
                done.append((entry, envelope, False))
                continue
            try:
                await handler(envelope)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._failed(entry, envelope, f"{type(exc).__name__}: {exc}")
            else:
                done.append((entry, envelope, dedupe))
        return done

    async def _handled_before(
        self, parsed: list[tuple[_Entry, Envelope | MalformedMessage]]
    ) -> set[tuple[str, str]]:
        """The (sender, id) pairs, among the batch's messages for de-duplicating handlers,
        already handled successfully: one MGET for the batch."""
        ids = [
            (envelope.sender, envelope.id)
            for _, envelope in parsed
            if isinstance(envelope, Envelope)
            and self._handlers.get(envelope.type, (None, False))[1]
        ]
        if not ids:
            return set()
        found = await self._redis.mget([wire.done_key(self.agent, s, i) for s, i in ids])
        return {pair for pair, value in zip(ids, found, strict=True) if value}

    async def _ack(self, done: list[tuple[_Entry, Envelope, bool]], *, prefetch: bool) -> None:
        """Acknowledge ``done`` with their ``delivered`` event in one script; with ``prefetch``,
        read the next batch in the same round trip (without blocking)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            if done:
                by_stream: dict[bytes, list[bytes]] = {}
                for entry, _, _ in done:
                    by_stream.setdefault(entry.stream, []).append(entry.entry_id)
                keys = [
                    wire.events(self.agent),
                    *by_stream,
                    *(wire.done_key(self.agent, e.sender, e.id) for _, e, dedupe in done if dedupe),
                ]
                args = [
                    len(by_stream),
                    wire.GROUP,
                    repr(time.time()),
                    dump_json([envelope.head() for _, envelope, _ in done]),
                    self.config.events_maxlen,
                    self.config.dedupe_ttl,
                    *(part for ids in by_stream.values() for part in (len(ids), *ids)),
                ]
                # execute_command: a cluster pipeline blocks its evalsha method, not the command.
                pipe.execute_command("EVALSHA", self._scripts.ack.sha, len(keys), *keys, *args)
            if prefetch:
                pipe.xreadgroup(
                    wire.GROUP,
                    self.consumer,
                    dict.fromkeys(self._sources, ">"),
                    count=self.config.batch,
                )
            try:
                results = await pipe.execute()
            except NoScriptError:
                # Redis forgot the script (a restart): once more by the script object, which
                # loads it; what was to be read ahead is read next round.
                await self._scripts.ack(keys=keys, args=args)
                return
        if prefetch:
            self._prefetched = _unpack(results[-1])

    async def _failed(self, entry: _Entry, envelope: Envelope, error: str) -> None:
        if envelope.attempt >= self.config.max_attempts:
            await self._dead(entry, envelope, error)
            return
        retry = envelope.next_attempt()
        due = time.time() + self.config.backoff(retry.attempt)
        await self._scripts.fail(
            keys=[wire.delayed(self.agent), entry.stream, wire.events(self.agent)],
            args=[
                wire.GROUP,
                entry.entry_id,
                retry.to_json(),
                due,
                repr(time.time()),
                dump_json([envelope.head()]),
                error[:2000],
                self.config.events_maxlen,
            ],
        )
        logger.warning(
            "message %s (%s) failed, attempt %d: %s",
            envelope.id,
            envelope.type,
            envelope.attempt,
            error,
        )

    async def _dead(self, entry: _Entry, envelope: Envelope | None, reason: str) -> None:
        source = entry.entry_id.decode()
        letter = wire.DeadLetter.fields(
            reason, entry.stream.decode(), source, envelope, None if envelope else entry.fields
        )
        head = envelope.head() if envelope is not None else {"id": source}
        await self._scripts.dead(
            keys=[wire.dead_letters(self.agent), entry.stream, wire.events(self.agent)],
            args=[
                wire.GROUP,
                entry.entry_id,
                repr(time.time()),
                dump_json([head]),
                reason[:2000],
                self.config.events_maxlen,
                self.config.dead_maxlen,
                *(part for pair in letter.items() for part in pair),
            ],
        )
        logger.warning("dead-lettered %s: %s", source, reason)


async def trim_stream(
    redis: Any,
    stream: str | bytes,
    *,
    maxlen: int | None = None,
    max_age: float | None = None,
    keep_from: str | None = None,
) -> int:
    """Trim by length and/or age, never past an entry a consumer group still needs (nor past
    ``keep_from``); returns how many entries went."""
    if maxlen is None and max_age is None:
        return 0
    script = redis.register_script(wire.TRIM_STREAM)
    removed, _ = await script(keys=[stream], args=wire.trim_arguments(maxlen, max_age, keep_from))
    return int(removed)


def _unpack(response: Any) -> list[_Entry]:
    """XREADGROUP's reply as entries for ``_handle``."""
    return [
        _Entry(stream, entry_id, fields)
        for stream, batch in response or []
        for entry_id, fields in batch
    ]
