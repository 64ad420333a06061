"""The version handshake: a client refuses to start against a site that does not serve its
protocol version, naming both; a range lets a rolling upgrade through."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from foundation_client import (
    ClientSettings,
    MalformedMessage,
    Messaging,
    ProtocolMismatch,
    SecretsClient,
)
from foundation_client import protocol as wire
from foundation_client.testing import sync_client

REDIS_URL = os.environ.get("FOUNDATION_REDIS_URL") or os.environ.get("REDIS_URL") or ""


@pytest.fixture
def published():
    """Publish a served range as the site does, and put back what was there."""
    redis = sync_client(REDIS_URL)
    before = redis.get(wire.PROTOCOL_KEY)

    def publish(served: tuple[int, int] | None) -> None:
        if served is None:
            redis.delete(wire.PROTOCOL_KEY)
        else:
            redis.set(wire.PROTOCOL_KEY, wire.encode_served(served))

    yield publish
    if before is None:
        redis.delete(wire.PROTOCOL_KEY)
    else:
        redis.set(wire.PROTOCOL_KEY, before)


def _start(agent: str) -> None:
    async def scenario() -> None:
        async with Messaging(ClientSettings(agent_name=agent, redis_url=REDIS_URL)):
            pass

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("served", "upgrade"),
    [((1, wire.PROTOCOL_VERSION - 1), "site"), ((wire.PROTOCOL_VERSION + 1, 9), "client")],
)
def test_messaging_refuses_to_start_outside_the_served_range(published, served, upgrade):
    published(served)
    agent = f"v-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ProtocolMismatch) as refused:
        _start(agent)
    message = str(refused.value)
    assert f"protocol version {wire.PROTOCOL_VERSION}" in message
    assert f"versions {served[0]} to {served[1]}" in message
    assert f"upgrade the {upgrade}" in message
    # Refused before anything was made: no group on its requeue stream.
    assert not sync_client(REDIS_URL).exists(wire.requeue(agent))


def test_messaging_starts_inside_a_range_and_against_a_site_from_before(published):
    published((wire.PROTOCOL_VERSION - 1, wire.PROTOCOL_VERSION))  # a rolling upgrade
    _start(f"v-{uuid.uuid4().hex[:8]}")
    published(None)  # a site that predates the range: logged, not refused
    _start(f"v-{uuid.uuid4().hex[:8]}")


def test_a_malformed_range_is_refused_with_its_reason():
    for raw in (b"{}", b"not json", b'{"min": 3, "max": 2}', b'{"min": "2", "max": 3}'):
        with pytest.raises(MalformedMessage, match="min, max"):
            wire.decode_served(raw)


class _Site:
    def __init__(self, status: int, body: dict) -> None:
        self.answer = (status, body)
        self.paths: list[str] = []

    async def get_json(self, path: str):
        self.paths.append(path)
        return self.answer

    async def close(self) -> None:
        pass


def test_the_secrets_client_checks_the_range_the_site_answers():
    settings = ClientSettings(agent_name="ai_manager", agent_token="fdn_test")

    async def start(site: _Site) -> None:
        await SecretsClient(settings, transport=site, listen=False).start()

    outside = _Site(200, wire.served_document((wire.PROTOCOL_VERSION + 1, 9)))
    with pytest.raises(ProtocolMismatch, match="upgrade the client"):
        asyncio.run(start(outside))
    assert outside.paths == [wire.PROTOCOL_API_PATH]
    asyncio.run(start(_Site(200, wire.served_document((2, wire.PROTOCOL_VERSION)))))
    asyncio.run(start(_Site(404, {"detail": "Not Found"})))  # a site from before
