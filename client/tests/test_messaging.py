"""Messaging against the real Redis of `make test` (FOUNDATION_REDIS_URL or REDIS_URL)."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import time
import uuid

import pytest
from redis.exceptions import DataError, ResponseError

from foundation_client import (
    ClientSettings,
    Envelope,
    FoundationError,
    MessageRejected,
    Messaging,
    MessagingConfig,
    RequestTimeout,
    WireUnavailable,
    trim_stream,
)
from foundation_client import protocol as wire
from foundation_client._messaging import _Entry
from foundation_client.connections import HiredisConnection, connect, send_batch
from foundation_client.protocol import GROUP, delayed, inbox
from foundation_client.testing import is_cluster, sync_client

REDIS_URL = os.environ.get("FOUNDATION_REDIS_URL") or os.environ.get("REDIS_URL") or ""
CLUSTER = is_cluster(REDIS_URL)
pytestmark = pytest.mark.usefixtures("redis_url")

FAST = MessagingConfig(
    max_attempts=3,
    backoff_base=0.05,
    backoff_max=0.2,
    visibility_timeout=0.3,
    block_ms=50,
    refresh_every=0.05,
)


def name(prefix: str = "agent") -> str:
    """A new agent name, registered (as the site does when it creates an agent)."""
    agent = f"{prefix}-{uuid.uuid4().hex[:8]}"
    sync_redis().sadd(wire.AGENTS, agent)
    return agent


def settings(agent: str) -> ClientSettings:
    return ClientSettings(agent_name=agent, redis_url=REDIS_URL or "redis://localhost")


@functools.cache
def sync_redis():
    """One client for the module: the drain loops poll through it every few milliseconds."""
    return sync_client(REDIS_URL)


def run(coro):
    return asyncio.run(coro)


def dead_letters_for(receiver: str) -> list[dict[str, str]]:
    rows = []
    for entry_id, fields in sync_redis().xrange(wire.dead_letters(receiver)):
        letter = wire.DeadLetter.decode(entry_id, fields)
        row = {"reason": letter.reason, "stream": letter.stream, "raw": letter.raw or ""}
        if letter.envelope is not None:
            row["payload"] = letter.envelope.payload_bytes().decode()
            row["attempt"] = str(letter.envelope.attempt)
        rows.append(row)
    return rows


async def drain(consumer: Messaging, until, timeout: float = 10.0) -> None:
    """Consume until ``until()``: the deadline is only for a test that would otherwise hang."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out"
        await consumer.process_once(block_ms=0)
        await asyncio.sleep(0.002)


def test_a_message_is_acknowledged_only_after_its_handler_succeeds():
    receiver, sender = name("rx"), name("tx")
    seen: list[Envelope] = []
    pending_during_handler: list[int] = []

    async def scenario():
        async with (
            Messaging(settings(sender), config=FAST) as tx,
            Messaging(settings(receiver), config=FAST) as rx,
        ):

            async def handle(envelope: Envelope) -> None:
                info = await rx._redis.xpending(inbox(receiver, sender), GROUP)
                pending_during_handler.append(info["pending"])
                seen.append(envelope)

            rx.on("greet", handle)
            message_id = await tx.send(receiver, "greet", {"hello": "world"}, correlation_id="c1")
            await drain(rx, lambda: bool(seen))
            after = await rx._redis.xpending(inbox(receiver, sender), GROUP)
            return message_id, after["pending"]

    message_id, pending_after = run(scenario())
    assert pending_during_handler == [1]
    assert pending_after == 0
    envelope = seen[0]
    # The names the test chose (this once compared the envelope's with themselves).
    assert (envelope.id, envelope.sender, envelope.receiver) == (message_id, sender, receiver)
    assert envelope.payload == {"hello": "world"}
    assert envelope.correlation_id == "c1"
    assert envelope.attempt == 1


def test_a_raising_handler_is_retried_with_backoff_then_dead_lettered():
    receiver = name("rx")
    attempts: list[tuple[int, float]] = []

    async def scenario():
        async with Messaging(settings(receiver), config=FAST) as rx:

            async def flaky(envelope: Envelope) -> None:
                attempts.append((envelope.attempt, time.monotonic()))
                raise RuntimeError("downstream is down")

            rx.on("job", flaky)
            await rx.send(receiver, "job", {"n": 1})
            await drain(rx, lambda: len(dead_letters_for(receiver)) == 1)

    run(scenario())
    assert [a for a, _ in attempts] == [1, 2, 3]
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.05
    assert gaps[1] >= 0.1  # doubled
    dead = dead_letters_for(receiver)[0]
    assert dead["reason"] == "RuntimeError: downstream is down"
    assert json.loads(dead["payload"]) == {"n": 1}
    assert dead["attempt"] == "3"
    r = sync_redis()
    assert r.xpending(inbox(receiver, receiver), GROUP)["pending"] == 0
    assert r.zcard(delayed(receiver)) == 0


def test_a_handler_that_recovers_is_not_dead_lettered():
    receiver = name("rx")
    calls: list[int] = []

    async def scenario():
        async with Messaging(settings(receiver), config=FAST) as rx:

            async def recovering(envelope: Envelope) -> None:
                calls.append(envelope.attempt)
                if envelope.attempt < 2:
                    raise ValueError("first time fails")

            rx.on("job", recovering)
            await rx.send(receiver, "job", {})
            await drain(rx, lambda: calls == [1, 2])

    run(scenario())
    assert dead_letters_for(receiver) == []


def test_entries_left_pending_by_a_dead_consumer_are_reclaimed():
    """Redelivered to another consumer once the visibility timeout has passed, and not before;
    an entry the dead consumer acknowledged is not redelivered."""
    receiver = name("rx")
    stream = inbox(receiver, receiver)
    handled: list[str] = []

    async def scenario():
        async with Messaging(settings(receiver), config=FAST, consumer_name="doomed") as first:
            acked = await first.send(receiver, "job", {"n": 1})
            unacked = await first.send(receiver, "job", {"n": 2})
            # "doomed" reads both, acknowledges one, and dies before handling the other.
            read_at = time.monotonic()  # before Redis starts the entries' idle time
            [(_, entries)] = await first._redis.xreadgroup(GROUP, "doomed", {stream: ">"})
            for entry_id, fields in entries:
                if wire.Envelope.from_entry(fields).id == acked:
                    await first._redis.xack(stream, GROUP, entry_id)
        async with Messaging(settings(receiver), config=FAST, consumer_name="survivor") as second:

            async def handle(envelope: Envelope) -> None:
                handled.append(envelope.id)

            second.on("job", handle)
            await drain(second, lambda: bool(handled))
            return unacked, time.monotonic() - read_at

    unacked, waited = run(scenario())
    # The sweep that reclaimed the one would have reclaimed the other too, were it pending.
    assert handled == [unacked]
    # A lower bound, however slow the machine: Redis counts the idle time in whole milliseconds.
    assert waited >= FAST.visibility_timeout - 0.002


def test_a_slow_batch_keeps_its_entries_from_being_claimed_by_another_consumer():
    """One consumer reads five entries and holds the first in its handler for twice the
    visibility timeout, while another looks for abandoned entries every 10 ms: the entry in hand
    and the four waiting behind it all stay the first consumer's, however long the batch takes."""
    receiver = name("rx")
    handled: list[tuple[str, int]] = []
    config = MessagingConfig(visibility_timeout=1.0, block_ms=20, sweep_every=0.01)

    async def scenario():
        async with (
            Messaging(settings(receiver), config=config, consumer_name="slow") as slow,
            Messaging(settings(receiver), config=config, consumer_name="eager") as eager,
        ):
            holding, release = asyncio.Event(), asyncio.Event()
            swept, all_handled = asyncio.Event(), asyncio.Event()

            def handler(who: str):
                async def handle(envelope: Envelope) -> None:
                    handled.append((who, envelope.payload["n"]))
                    if who == "slow" and envelope.payload["n"] == 0:
                        holding.set()
                        await release.wait()
                    if len(handled) == 5:
                        all_handled.set()

                return handle

            reclaim = eager._reclaim

            async def reclaim_and_tell() -> list[_Entry]:
                entries = await reclaim()
                swept.set()
                return entries

            eager._reclaim = reclaim_and_tell
            slow.on("job", handler("slow"))
            eager.on("job", handler("eager"))
            await slow.send_many([(receiver, "job", {"n": n}, None) for n in range(5)])
            stop = asyncio.Event()
            loops = [asyncio.create_task(slow.run(stop))]
            # "slow" has read all five in one XREADGROUP: "eager" could only claim them.
            await asyncio.wait_for(holding.wait(), timeout=10)
            loops.append(asyncio.create_task(eager.run(stop)))
            # Real time must pass for an entry to look abandoned: twice the visibility timeout
            # since "slow" read them (load only makes it longer) ...
            await asyncio.sleep(2 * config.visibility_timeout)
            # ... and "eager" must have looked after that: the second sweep to end from here
            # began after it.
            for _ in range(2):
                swept.clear()
                await asyncio.wait_for(swept.wait(), timeout=10)
            release.set()
            await asyncio.wait_for(all_handled.wait(), timeout=10)
            stop.set()
            await asyncio.gather(*loops)
            return await slow._redis.xpending(inbox(receiver, receiver), GROUP)

    pending = run(scenario())
    assert sorted(handled) == [("slow", n) for n in range(5)]
    assert pending["pending"] == 0


def test_a_stopped_loop_handles_what_it_read_ahead_before_returning():
    receiver = name("rx")
    handled: list[int] = []

    async def scenario():
        config = MessagingConfig(batch=2, block_ms=20)
        async with Messaging(settings(receiver), config=config) as rx:
            stop = asyncio.Event()

            async def handle(envelope: Envelope) -> None:
                handled.append(envelope.payload["n"])
                stop.set()  # asked to stop while the next batch is being read ahead

            rx.on("job", handle)
            await rx.send_many([(receiver, "job", {"n": n}, None) for n in range(4)])
            await rx.run(stop)
            return await rx._redis.xpending(inbox(receiver, receiver), GROUP)

    pending = run(scenario())
    assert handled == [0, 1, 2, 3]
    assert pending["pending"] == 0


def test_stopping_with_redis_gone_returns_and_leaves_what_was_read_ahead_pending():
    async def scenario():
        rx = Messaging(settings(name("rx")), config=FAST)
        await rx.start()
        rx._prefetched = [_Entry(inbox(rx.agent, rx.agent).encode(), b"1-0", {b"e": b"{}"})]
        await rx._redis.aclose()
        rx._redis = connect("redis://127.0.0.1:1")  # nothing listens there
        stop = asyncio.Event()
        stop.set()
        await asyncio.wait_for(rx.run(stop), timeout=5)
        return rx._prefetched

    assert run(scenario()) == []


def test_a_receiver_that_is_not_registered_is_refused_and_nothing_is_written():
    sender, stranger = name("tx"), f"stranger-{uuid.uuid4().hex[:8]}"

    async def scenario():
        async with Messaging(settings(sender), config=FAST) as tx:
            with pytest.raises(MessageRejected, match=f"not a registered agent: {stranger}"):
                await tx.send(stranger, "job", {})
            sync_redis().sadd(wire.AGENTS, stranger)  # registered since: found at once
            await tx.send(stranger, "job", {})

    run(scenario())
    assert sync_redis().xlen(inbox(stranger, sender)) == 1


def test_a_write_redis_refuses_raises_and_the_connection_stays_usable():
    sender, receiver = name("tx"), name("rx")
    sync_redis().set(inbox(receiver, sender), b"not a stream")

    async def scenario():
        async with Messaging(settings(sender), config=FAST) as tx:
            # One tree to catch (FoundationError), with redis-py's error as the cause.
            with pytest.raises(WireUnavailable, match="WRONGTYPE") as refused:
                await tx.send_many([(receiver, "job", {"n": n}, None) for n in range(3)])
            assert isinstance(refused.value, FoundationError)
            assert isinstance(refused.value.__cause__, ResponseError)
            sync_redis().delete(inbox(receiver, sender))
            await tx.send(receiver, "job", {"n": 3})

    run(scenario())
    assert sync_redis().xlen(inbox(receiver, sender)) == 1


@pytest.mark.parametrize("receiver", [["a", "list"], None, 7])
def test_a_receiver_that_is_not_text_is_refused(receiver):
    async def scenario():
        async with Messaging(settings(name("tx"))) as tx:
            with pytest.raises(MessageRejected, match="is not an agent name"):
                await tx.send(receiver, "job", {})

    run(scenario())


def test_a_message_that_keeps_killing_its_consumer_is_dead_lettered():
    receiver = name("rx")

    async def scenario():
        async with Messaging(settings(receiver), config=FAST) as rx:
            rx.on("job", lambda e: asyncio.sleep(0))
            await rx.send(receiver, "job", {"poison": True})
            # Each consumer takes it and "dies" before acknowledging: delivered again and again.
            await rx._redis.xreadgroup(
                GROUP, "dies-first", {inbox(receiver, receiver): ">"}, count=1
            )
            for i in range(FAST.max_attempts):
                await rx._redis.xautoclaim(inbox(receiver, receiver), GROUP, f"dies-{i}", 0, "0-0")
            await asyncio.sleep(FAST.visibility_timeout + 0.05)
            await rx.process_once(block_ms=0)

    run(scenario())
    dead = dead_letters_for(receiver)
    assert len(dead) == 1
    assert "without an acknowledgement" in dead[0]["reason"]


def test_a_malformed_entry_is_dead_lettered_and_the_consumer_goes_on():
    receiver = name("rx")
    handled: list[Envelope] = []

    async def scenario():
        async with Messaging(settings(receiver), config=FAST) as rx:

            async def handle(envelope: Envelope) -> None:
                handled.append(envelope)

            rx.on("job", handle)
            await rx._redis.xadd(
                inbox(receiver, receiver), {"foreign": "producer", "payload": "{not json"}
            )
            await rx.send(receiver, "job", {"ok": True})
            await drain(rx, lambda: bool(handled))

    run(scenario())
    dead = dead_letters_for(receiver)
    assert len(dead) == 1
    assert dead[0]["reason"] == "malformed entry: an inbox entry has exactly one field, 'e'"
    assert json.loads(dead[0]["raw"]) == {"foreign": "producer", "payload": "{not json"}
    assert handled[0].payload == {"ok": True}


def test_a_message_without_a_handler_is_dead_lettered():
    receiver = name("rx")

    async def scenario():
        async with Messaging(settings(receiver), config=FAST) as rx:
            await rx.send(receiver, "unknown.type", {})
            await drain(rx, lambda: bool(dead_letters_for(receiver)))

    run(scenario())
    assert dead_letters_for(receiver)[0]["reason"] == "no handler for type 'unknown.type'"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"x": {1, 2}}, "not JSON-serialisable"),
        ({1: "a key JSON would silently turn into a string"}, "not JSON-serialisable"),
        ({"n": 2**70}, "not JSON-serialisable"),
        ({"blob": "x" * 300_000}, "the limit is"),
    ],
)
def test_bad_payloads_are_refused_at_send_and_nothing_is_written(payload, message):
    receiver, sender = name("rx"), name("tx")

    async def scenario():
        async with Messaging(settings(sender)) as tx:
            with pytest.raises(MessageRejected, match=message):
                await tx.send(receiver, "job", payload)

    run(scenario())
    assert sync_redis().exists(inbox(receiver, sender)) == 0


def test_one_bad_message_refuses_the_whole_batch():
    receiver, sender = name("rx"), name("tx")

    async def scenario():
        async with Messaging(settings(sender)) as tx:
            await tx.send(receiver, "job", {})  # the pair (receiver, "job") is now known good
            with pytest.raises(MessageRejected, match="is not an agent name"):
                await tx.send_many(
                    [(receiver, "job", {"n": 1}, None), ("Not An Agent", "job", {}, None)]
                )
            with pytest.raises(MessageRejected, match="is not a message type"):
                await tx.send_many([(receiver, "job", {}, None), (receiver, "bad type!", {}, None)])

    run(scenario())
    assert sync_redis().xlen(inbox(receiver, sender)) == 1


@pytest.mark.skipif(CLUSTER, reason="the single-node connection classes; a cluster's are stock")
def test_the_clients_redis_connections_pack_commands_with_hiredis():
    """Packed by hiredis directly, with redis-py's packer's behaviour: every type of argument it
    takes, a command name of two words, and its DataError for one it does not, after which the
    connection still works. ``send_batch`` the same."""

    async def scenario():
        client = connect(REDIS_URL or "")
        try:
            key = f"test:{uuid.uuid4().hex}"
            await client.hset(key, mapping={"s": "é", "b": b"\x00\xff", "i": 7, "f": 0.1})
            await client.hset(key, mapping={"m": memoryview(b"mv"), "a": bytearray(b"ba")})
            values = await client.hgetall(key)
            encoding = await client.execute_command("OBJECT ENCODING", key)
            with pytest.raises(DataError):
                await client.hset(key, "n", None)
            await send_batch(client, [("HSET", key, "x", memoryview(b"1")), ("HDEL", key, "m")])
            with pytest.raises(DataError):
                await send_batch(client, [("HSET", key, "y", None)])
            after = await client.hgetall(key)
            await client.delete(key)
            connection = await client.connection_pool.get_connection()
            await client.connection_pool.release(connection)
            return values, encoding, after, type(connection)
        finally:
            await client.aclose()

    values, encoding, after, connection_class = run(scenario())
    assert values == {
        b"s": "é".encode(),
        b"b": b"\x00\xff",
        b"i": b"7",
        b"f": b"0.1",
        b"m": b"mv",
        b"a": b"ba",
    }
    assert encoding in (b"listpack", b"ziplist", b"hashtable")
    assert after == {k: v for k, v in values.items() if k != b"m"} | {b"x": b"1"}
    assert connection_class is HiredisConnection


def test_dedupe_skips_a_message_id_already_handled():
    receiver = name("rx")
    runs: list[str] = []

    async def scenario():
        async with Messaging(settings(receiver), config=FAST) as rx:

            async def charge(envelope: Envelope) -> None:
                runs.append(envelope.id)

            rx.on("charge", charge, dedupe=True)
            message_id = await rx.send(receiver, "charge", {"amount": 5})
            await drain(rx, lambda: len(runs) == 1)
            # The same message delivered again (a replay, a producer retry).
            same = Envelope(sender="x", receiver=receiver, type="charge", payload={}, id=message_id)
            await rx._write([same])
            await rx.process_once(block_ms=0)
            pending = await rx._redis.xpending(inbox(receiver, receiver), GROUP)
            return pending["pending"]

    assert run(scenario()) == 0
    assert len(runs) == 1


def test_broadcast_reaches_every_consuming_agent_but_the_sender():
    agents = [name("bc") for _ in range(3)]
    got: dict[str, list[str]] = {a: [] for a in agents}

    async def scenario():
        clients = [Messaging(settings(a), config=FAST) for a in agents]
        for client in clients:
            await client.start()

            async def handle(envelope: Envelope, me: str = client.agent) -> None:
                got[me].append(envelope.type)

            client.on("announce", handle)
        await clients[0].broadcast("announce", {"v": 1})
        for client in clients[1:]:
            await drain(client, lambda c=client: bool(got[c.agent]))
        await clients[0].process_once(block_ms=0)
        for client in clients:
            await client.close()

    run(scenario())
    assert got[agents[0]] == []
    assert got[agents[1]] == ["announce"]
    assert got[agents[2]] == ["announce"]


def test_request_gets_the_reply_or_times_out():
    asker, answerer = name("ask"), name("ans")

    async def scenario():
        async with (
            Messaging(settings(asker), config=FAST) as a,
            Messaging(settings(answerer), config=FAST) as b,
        ):

            async def double(envelope: Envelope) -> None:
                await b.reply(envelope, {"result": envelope.payload["n"] * 2})

            b.on("double", double)
            stop = asyncio.Event()
            loops = [asyncio.create_task(a.run(stop)), asyncio.create_task(b.run(stop))]
            reply = await a.request(answerer, "double", {"n": 21}, timeout=10)
            with pytest.raises(RequestTimeout, match="no reply"):
                await a.request(name("nobody"), "double", {"n": 1}, timeout=0.2)
            stop.set()
            await asyncio.gather(*loops)
            return reply

    reply = run(scenario())
    assert reply.payload == {"result": 42}
    assert reply.correlation_id is not None


def test_a_reply_continues_the_trace_of_its_request():
    asker, answerer = name("ask"), name("ans")
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    async def scenario():
        async with (
            Messaging(settings(asker), config=FAST) as a,
            Messaging(settings(answerer), config=FAST) as b,
        ):

            async def echo(envelope: Envelope) -> None:
                await b.reply(envelope, envelope.traceparent)

            b.on("echo", echo)
            stop = asyncio.Event()
            loops = [asyncio.create_task(a.run(stop)), asyncio.create_task(b.run(stop))]
            reply = await a.request(answerer, "echo", None, timeout=10, traceparent=trace)
            with pytest.raises(MessageRejected, match="not a W3C traceparent"):
                await a.send(answerer, "echo", None, traceparent="00-nope")
            stop.set()
            await asyncio.gather(*loops)
            return reply

    reply = run(scenario())
    assert (reply.payload, reply.traceparent) == (trace, trace)


def test_every_status_goes_to_the_events_stream():
    receiver = name("rx")

    async def scenario():
        async with Messaging(settings(receiver), config=FAST) as rx:

            async def once_fails(envelope: Envelope) -> None:
                if envelope.attempt == 1:
                    raise ValueError("nope")

            rx.on("job", once_fails)
            message_id = await rx.send(receiver, "job", {})
            await drain(
                rx,
                lambda: "delivered" in _statuses(receiver, message_id),
            )
            return message_id

    message_id = run(scenario())
    assert _statuses(receiver, message_id) == ["sent", "failed", "delivered"]


def _statuses(receiver: str, message_id: str) -> list[str]:
    """The message's statuses: ``sent`` is its inbox entry (the recorder reads it there), the
    rest the receiver's events."""
    statuses = []
    for _, fields in sync_redis().xrange(inbox(receiver, receiver)):
        if wire.Envelope.from_entry(fields).id == message_id:
            statuses.append("sent")
    for _, fields in sync_redis().xrange(wire.events(receiver)):
        event = wire.StatusEvent.decode(fields)
        statuses.extend(event.status for item in event.items if item["id"] == message_id)
    return statuses


def test_trimming_never_drops_an_unacknowledged_entry():
    stream = f"foundation:test:{uuid.uuid4().hex[:8]}"

    async def scenario():
        r = connect(REDIS_URL)
        await r.xgroup_create(stream, "g", id="0", mkstream=True)
        ids = [await r.xadd(stream, {"n": str(i)}) for i in range(20)]
        # The group has read 10 entries and acknowledged only 5 of them; 10 never delivered.
        read = await r.xreadgroup("g", "c", {stream: ">"}, count=10)
        delivered = [entry_id for entry_id, _ in read[0][1]]
        await r.xack(stream, "g", *delivered[:3], delivered[4], delivered[6])
        removed = await trim_stream(r, stream, maxlen=2, max_age=0)
        left = [entry_id for entry_id, _ in await r.xrange(stream)]
        await r.delete(stream)
        await r.aclose()
        return ids, delivered, removed, left

    ids, delivered, removed, left = run(scenario())
    assert removed == 3  # only the acknowledged entries before the oldest pending one
    assert left == ids[3:]
    assert delivered[3] in left


def test_consumer_names_do_not_pile_up():
    receiver = name("rx")

    async def scenario():
        short = MessagingConfig(visibility_timeout=0.05)
        for i in range(3):
            client = Messaging(settings(receiver), config=short, consumer_name=f"gone-{i}")
            await client.start()
            await client._redis.xreadgroup(
                GROUP, f"gone-{i}", {inbox(receiver, receiver): ">"}, count=1
            )
            # Dies without close(): its name stays in the group.
            await client._redis.aclose()
        await asyncio.sleep(0.15)
        async with Messaging(settings(receiver), config=short, consumer_name="fresh") as fresh:
            infos = await fresh._redis.xinfo_consumers(inbox(receiver, receiver), GROUP)
            return sorted(i["name"].decode() for i in infos)

    # The three dead consumers are gone ("fresh" joins the group when it first reads).
    assert run(scenario()) == []


def test_a_consumer_with_pending_entries_is_never_deleted():
    receiver = name("rx")

    async def scenario():
        short = MessagingConfig(visibility_timeout=0.05)
        holder = Messaging(settings(receiver), config=short, consumer_name="holder")
        await holder.start()
        await holder.send(receiver, "job", {})
        await holder._redis.xreadgroup(GROUP, "holder", {inbox(receiver, receiver): ">"}, count=1)
        await holder._redis.aclose()
        await asyncio.sleep(0.15)
        async with Messaging(settings(receiver), config=short, consumer_name="other") as other:
            infos = await other._redis.xinfo_consumers(inbox(receiver, receiver), GROUP)
            return {i["name"].decode(): i["pending"] for i in infos}

    assert run(scenario()) == {"holder": 1}


@pytest.mark.parametrize(
    ("receiver", "message_type", "message"),
    [
        ("Bad Name", "job", "is not an agent name"),
        ("", "job", "is not an agent name"),
        ("ok-agent", "has space", "is not a message type"),
        ("ok-agent", "x" * 51, "is not a message type"),
    ],
)
def test_bad_receivers_and_types_are_refused_at_send(receiver, message_type, message):
    async def scenario():
        async with Messaging(settings(name("tx"))) as tx:
            with pytest.raises(MessageRejected, match=message):
                await tx.send(receiver, message_type, {})

    run(scenario())
