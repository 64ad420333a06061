"""One Redis identity per agent: what an agent's own ACL user may not do, tried against the real
Redis, and forgeries of senders and replies, refused or detected."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from typing import Any

import pytest
import redis
from redis.exceptions import NoPermissionError

from foundation_client import ClientSettings, Envelope, Messaging, MessagingConfig, protocol
from foundation_client.protocol import (
    AGENT_SCRIPTS,
    AGENTS,
    GROUP,
    SECRETS_ROTATION_CHANNEL,
    acl_rules,
    acl_user,
    dead_letters,
    delayed,
    done_key,
    events,
    inbox,
    requeue,
    site_events,
)
from foundation_client.testing import is_cluster, on_every_node, sync_client, url_for

REDIS_URL = os.environ.get("FOUNDATION_REDIS_URL") or os.environ.get("REDIS_URL") or ""
CLUSTER = is_cluster(REDIS_URL)
pytestmark = pytest.mark.usefixtures("redis_url")

FAST = MessagingConfig(max_attempts=2, backoff_base=0.02, block_ms=20, refresh_every=0.05)


class Agents:
    """Agents with ACL users of their own, as the site provisions them."""

    def __init__(self) -> None:
        self.admin = sync_client(REDIS_URL)
        self.urls: dict[str, str] = {}

    def make(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        password = secrets.token_urlsafe(24)
        on_every_node(
            self.admin,
            *("ACL", "SETUSER", acl_user(name), "reset", "on", f">{password}", *acl_rules(name)),
        )
        for source in AGENT_SCRIPTS:  # as the site does: agents may only EVALSHA them
            on_every_node(self.admin, "SCRIPT", "LOAD", source)
        self.admin.sadd(AGENTS, name)
        self.urls[name] = url_for(REDIS_URL, acl_user(name), password)
        return name

    def client(self, name: str) -> Any:
        return sync_client(self.urls[name])

    def settings(self, name: str) -> ClientSettings:
        return ClientSettings(agent_name=name, redis_url=self.urls[name])

    def close(self) -> None:
        for name in self.urls:
            on_every_node(self.admin, "ACL", "DELUSER", acl_user(name))
            self.admin.srem(AGENTS, name)


@pytest.fixture
def agents():
    made = Agents()
    yield made
    made.close()


@pytest.fixture
def trio(agents):
    """Three agents: a, b and c; b has a message from c waiting, and one from a."""
    a, b, c = agents.make("a"), agents.make("b"), agents.make("c")
    admin = agents.admin
    for sender in (a, c):
        admin.xgroup_create(inbox(b, sender), GROUP, id="0", mkstream=True)
        admin.xadd(inbox(b, sender), Envelope(sender, b, "t", {"n": 1}).to_entry())
    admin.zadd(delayed(b), {b"{}": 1})
    admin.set(done_key(b, c, "m1"), b"1")
    return a, b, c


def refused(call, *args) -> None:
    with pytest.raises(NoPermissionError):
        call(*args)


def test_an_agent_cannot_read_or_consume_another_agents_streams(agents, trio):
    a, b, c = trio
    ra = agents.client(a)
    for key in (inbox(b, c), inbox(b, a), requeue(b), events(b), dead_letters(b)):
        refused(ra.xrange, key)
        refused(ra.xreadgroup, GROUP, "thief", {key: ">"})
        refused(ra.xread, {key: "0"})
    refused(ra.zrange, delayed(b), 0, -1)
    refused(ra.get, done_key(b, c, "m1"))
    refused(ra.mget, [done_key(b, c, "m1")])


def test_an_agent_cannot_acknowledge_claim_trim_or_delete_another_agents_entries(agents, trio):
    a, b, c = trio
    ra = agents.client(a)
    entry_id = agents.admin.xrange(inbox(b, c))[0][0]
    for key in (inbox(b, c), inbox(b, a)):
        refused(ra.xack, key, GROUP, entry_id)
        refused(ra.xclaim, key, GROUP, "thief", 0, [entry_id])
        refused(ra.xautoclaim, key, GROUP, "thief", 0)
        refused(ra.xtrim, key, 0)
        refused(ra.xdel, key, entry_id)
        refused(ra.delete, key)
        refused(ra.xgroup_destroy, key, GROUP)
        refused(ra.xgroup_setid, key, GROUP, "$")
    refused(ra.delete, delayed(b))
    refused(ra.set, done_key(b, c, "forged"), b"1")
    assert agents.admin.xlen(inbox(b, c)) == 1
    assert agents.admin.xlen(inbox(b, a)) == 1


def test_an_agent_may_only_append_where_it_sends(agents, trio):
    a, b, _ = trio
    ra = agents.client(a)
    ra.xadd(inbox(b, a), Envelope(a, b, "t", 2).to_entry())  # allowed: its own sending
    refused(ra.xrange, inbox(b, a))
    refused(ra.xlen, inbox(b, a))
    refused(ra.xinfo_groups, inbox(b, a))


def test_an_agent_cannot_publish_or_touch_system_keys(agents, trio):
    a, b, _ = trio
    ra = agents.client(a)
    refused(ra.publish, SECRETS_ROTATION_CHANNEL, '{"name": "db", "version": 1}')
    refused(ra.publish, f"{protocol.NOTICES}config", "x")
    refused(ra.publish, f"fdn:{{{a}}}:anything", "x")
    refused(ra.sadd, AGENTS, "intruder")
    refused(ra.srem, AGENTS, b)
    refused(ra.xadd, events(b), {"status": "delivered"})
    refused(ra.xadd, site_events(a), {"status": "replayed"})
    refused(ra.flushall)
    refused(ra.flushdb)
    refused(ra.keys, "*")
    refused(ra.scan)
    refused(ra.config_get, "*")
    refused(ra.execute_command, "ACL", "SETUSER", acl_user(a), "+@all")
    refused(ra.execute_command, "CLIENT", "KILL", "USER", acl_user(b))
    assert ra.smembers(AGENTS)  # the registry is readable
    pubsub = ra.pubsub()
    pubsub.subscribe(SECRETS_ROTATION_CHANNEL)  # notices can be listened to
    pubsub.close()


def test_an_agent_can_run_no_script_of_its_own_nor_watch_key_names(agents, trio):
    a, _, _ = trio
    # One node, even on a cluster: these commands name no key to route by.
    ra = redis.Redis.from_url(agents.urls[a].replace("+cluster://", "://", 1))
    loop = "local s = 0 while true do s = s + 1 end"
    refused(ra.eval, loop, 0)
    refused(ra.script_load, loop)
    refused(ra.execute_command, "FUNCTION", "LOAD", f"#!lua name=x\n{loop}")
    refused(ra.execute_command, "CLIENT", "TRACKING", "on", "BCAST")
    refused(ra.execute_command, "CLIENT", "LIST")
    refused(ra.execute_command, "SCRIPT", "KILL")


def test_a_receiver_cannot_forge_a_message_into_its_own_inbox(agents, trio):
    a, b, _ = trio
    rb = agents.client(b)
    refused(rb.xadd, inbox(b, a), Envelope(a, b, "t", 1).to_entry())
    refused(rb.xtrim, inbox(b, a), 0)
    refused(rb.xdel, inbox(b, a), "0-1")


def _run_until(condition, *clients: Messaging, timeout: float = 10.0):
    """Until ``condition()``, driving ``clients`` (none: only waiting, while loops of their own
    run). The deadline is only for a test that would otherwise hang."""

    async def loop() -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            for client in clients:
                await client.process_once(block_ms=0)
            await asyncio.sleep(0.005)

    return loop()


def test_messaging_works_with_each_agents_own_user(agents):
    a, b = agents.make("a"), agents.make("b")
    got: list[Envelope] = []

    async def scenario():
        async with (
            Messaging(agents.settings(a), config=FAST) as ma,
            Messaging(agents.settings(b), config=FAST) as mb,
        ):
            calls = [0]

            async def handle(envelope: Envelope) -> None:
                calls[0] += 1
                if calls[0] == 1:
                    raise RuntimeError("once")  # retried through b's own delayed set
                got.append(envelope)

            async def never(envelope: Envelope) -> None:
                raise RuntimeError("always")

            async def double(envelope: Envelope) -> None:
                await mb.reply(envelope, envelope.payload * 2)

            mb.on("job", handle, dedupe=True)
            mb.on("bad", never)
            mb.on("double", double)
            await ma.send(b, "job", {"n": 1})
            await ma.send(b, "bad", {})
            await _run_until(lambda: bool(got), mb)
            await _run_until(lambda: agents.admin.xlen(dead_letters(b)) == 1, mb)
            stop = asyncio.Event()
            loops = [asyncio.create_task(m.run(stop)) for m in (ma, mb)]
            reply = await ma.request(b, "double", 21, timeout=10)
            stop.set()
            await asyncio.gather(*loops)
            return reply

    reply = asyncio.run(scenario())
    assert got[0].sender == a
    assert got[0].attempt == 2
    assert (reply.payload, reply.sender) == (42, b)


def test_a_claimed_sender_is_detected_and_dead_lettered(agents):
    a, b, c = agents.make("a"), agents.make("b"), agents.make("c")
    handled: list[Envelope] = []

    async def scenario():
        async with Messaging(agents.settings(b), config=FAST) as mb:

            async def handle(envelope: Envelope) -> None:
                handled.append(envelope)

            mb.on("pay", handle)
            # a writes, in its own stream to b, an envelope that says it comes from c.
            forged = Envelope(sender=c, receiver=b, type="pay", payload={"to": "a"})
            agents.client(a).xadd(inbox(b, a), forged.to_entry())
            await _run_until(lambda: agents.admin.xlen(dead_letters(b)) == 1, mb)

    asyncio.run(scenario())
    assert handled == []
    entry_id, fields = agents.admin.xrange(dead_letters(b))[0]
    letter = protocol.DeadLetter.decode(entry_id, fields)
    assert (
        letter.reason
        == f"malformed entry: forged sender: the envelope says {c!r}, the stream is {a!r}'s"
    )


def test_a_reply_from_another_agent_than_the_one_asked_is_refused(agents):
    asker, asked, intruder = agents.make("ask"), agents.make("asked"), agents.make("evil")

    async def scenario():
        async with (
            Messaging(agents.settings(asker), config=FAST) as ma,
            Messaging(agents.settings(asked), config=FAST) as mb,
            Messaging(agents.settings(intruder), config=FAST) as mc,
        ):
            answered = asyncio.Event()

            async def slow_answer(envelope: Envelope) -> None:
                # The intruder, who saw the request's id somehow, answers first: the genuine
                # reply goes only once the asker has refused the forged one.
                fake = mc._envelope(asker, protocol.REPLY_TYPE, "forged", envelope.id)
                await mc._write([fake])
                await _run_until(lambda: agents.admin.xlen(dead_letters(asker)) == 1)
                await mb.reply(envelope, "genuine")
                answered.set()

            mb.on("ask", slow_answer)
            stop = asyncio.Event()
            loops = [asyncio.create_task(m.run(stop)) for m in (ma, mb)]
            reply = await ma.request(asked, "ask", None, timeout=10)
            stop.set()
            await asyncio.gather(*loops)
            return reply

    reply = asyncio.run(scenario())
    assert (reply.payload, reply.sender) == ("genuine", asked)
    letters = [
        protocol.DeadLetter.decode(i, f) for i, f in agents.admin.xrange(dead_letters(asker))
    ]
    assert [letter.reason for letter in letters] == [
        f"forged reply: from {intruder!r} to a request sent to {asked!r}"
    ]


def test_a_disabled_user_loses_its_open_connections(agents):
    a = agents.make("a")
    ra = agents.client(a)
    assert ra.ping()
    on_every_node(agents.admin, "ACL", "SETUSER", acl_user(a), "off")
    assert ra.ping()  # a disabled password does not close what is open...
    on_every_node(agents.admin, "CLIENT", "KILL", "USER", acl_user(a))
    with pytest.raises(redis.exceptions.RedisError):
        ra.ping()  # ...CLIENT KILL USER does, and it cannot come back
