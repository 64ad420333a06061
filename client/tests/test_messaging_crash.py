"""A consumer process SIGKILLed in the middle of a handler loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from foundation_client import ClientSettings, Envelope, Messaging, MessagingConfig
from foundation_client.protocol import AGENTS, GROUP, inbox
from foundation_client.testing import sync_client

REDIS_URL = os.environ.get("FOUNDATION_REDIS_URL") or os.environ.get("REDIS_URL") or ""
pytestmark = pytest.mark.usefixtures("redis_url")

CLIENT_DIR = Path(__file__).resolve().parent.parent
CONFIG = MessagingConfig(visibility_timeout=0.5, block_ms=50)  # the victim's as well

VICTIM = """
import asyncio, sys
from foundation_client import ClientSettings, Messaging, MessagingConfig
from foundation_client.testing import sync_client

agent, url, flag = sys.argv[1], sys.argv[2], sys.argv[3]

async def main():
    config = MessagingConfig(visibility_timeout=0.5, block_ms=50)
    async with Messaging(ClientSettings(agent_name=agent, redis_url=url), config=config) as m:
        async def stuck(envelope):
            sync_client(url).set(flag, envelope.id)
            await asyncio.sleep(3600)  # killed here, mid-handler
        m.on("job", stuck)
        await m.run()

asyncio.run(main())
"""


def test_a_consumer_killed_mid_handler_has_its_message_handled_by_another():
    agent = f"crash-{uuid.uuid4().hex[:8]}"
    flag = f"foundation:test:{agent}:in-handler"
    r = sync_client(REDIS_URL)
    r.sadd(AGENTS, agent, "sender")  # registered, as the site does
    victim = subprocess.Popen(
        [sys.executable, "-c", VICTIM, agent, REDIS_URL or "", flag], cwd=CLIENT_DIR
    )
    try:

        async def send() -> str:
            async with Messaging(
                ClientSettings(agent_name="sender", redis_url=REDIS_URL or "")
            ) as tx:
                return await tx.send(agent, "job", {"important": True})

        message_id = asyncio.run(send())
        deadline = time.monotonic() + 20
        while r.get(flag) is None:
            assert time.monotonic() < deadline, "the victim never started its handler"
            assert victim.poll() is None, "the victim exited"
            time.sleep(0.02)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        # The victim re-claimed the entry every third of the visibility timeout while its
        # handler ran, so the entry has been idle only since its last re-claim: ask Redis.
        seen_at = time.monotonic()  # before Redis measures the idle time
        [pending] = r.xpending_range(inbox(agent, "sender"), GROUP, "-", "+", 10)
        idle_at_death = pending["time_since_delivered"] / 1000
    finally:
        if victim.poll() is None:
            victim.kill()

    handled: list[Envelope] = []

    async def survive() -> float:
        async with Messaging(
            ClientSettings(agent_name=agent, redis_url=REDIS_URL or ""), config=CONFIG
        ) as m:

            async def done(envelope: Envelope) -> None:
                handled.append(envelope)

            m.on("job", done)
            while not handled:
                assert time.monotonic() - seen_at < 30, "no other consumer took the message"
                await m.process_once(block_ms=0)
                await asyncio.sleep(0.01)
            return time.monotonic() - seen_at

    after = asyncio.run(survive())
    assert [e.id for e in handled] == [message_id]
    assert handled[0].payload == {"important": True}
    # Taken only once idle for the visibility timeout (a lower bound, however slow the machine;
    # Redis counts whole milliseconds).
    assert idle_at_death + after >= CONFIG.visibility_timeout - 0.002
    r.delete(flag)
