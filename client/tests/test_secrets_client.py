"""SecretsClient's own logic (cache, stale window, error mapping) against a scripted transport.

The real site, Redis and OpenBao are exercised by tests/test_secrets_end_to_end.py.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from foundation_client import (
    ClientSettings,
    ConfigurationError,
    SecretAccessDenied,
    SecretNotFound,
    SecretsClient,
    SecretUnavailable,
    generate_keypair,
)
from foundation_client._http import TransportError
from foundation_client._sealing import load_public_key, seal, sealing_context

SETTINGS = ClientSettings(agent_name="ai_manager", agent_token="fdn_test")


class Script:
    """A transport answering from a list of (status, body) or TransportError; counts calls."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0
        self.paths: list[str] = []

    async def get_json(self, path: str):
        self.calls += 1
        self.paths.append(path)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return await answer()
        return answer

    async def close(self) -> None:
        pass


def ok(value: str, version: int = 1):
    return (200, {"name": "k", "version": version, "value": value})


def make(script: Script, settings: ClientSettings = SETTINGS, **kwargs) -> SecretsClient:
    return SecretsClient(settings, transport=script, listen=False, **kwargs)


def run(coro):
    return asyncio.run(coro)


def test_a_fresh_value_is_served_from_memory():
    script = Script(ok("v1"))

    async def scenario():
        client = make(script)
        assert await client.get("k") == "v1"
        assert await client.get("k") == "v1"
        await client.close()

    run(scenario())
    assert script.calls == 1


def test_an_expired_value_is_fetched_again():
    script = Script(ok("v1"), ok("v2", 2))

    async def scenario():
        client = make(script, ttl=0.05)
        assert await client.get("k") == "v1"
        await asyncio.sleep(0.06)
        assert await client.get("k") == "v2"
        assert client.cached_version("k") == 2

    run(scenario())


def test_a_stale_value_is_served_while_the_site_is_down_then_unavailable():
    script = Script(ok("v1"), TransportError("cannot reach the foundation (ClientConnectorError)"))

    async def scenario():
        client = make(script, ttl=0.02, stale_if_error=0.15)
        assert await client.get("k") == "v1"
        await asyncio.sleep(0.05)
        assert await client.get("k") == "v1"  # stale, inside the window
        await asyncio.sleep(0.15)
        with pytest.raises(SecretUnavailable, match="cannot reach the foundation"):
            await client.get("k")

    run(scenario())


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        ((404, {"detail": "x"}), SecretNotFound, "does not exist"),
        ((403, {"detail": "no grant for this secret"}), SecretAccessDenied, "no grant"),
        ((401, {"detail": "Unauthorized"}), SecretAccessDenied, "Unauthorized"),
        ((503, {"detail": "the secret store is unavailable"}), SecretUnavailable, "store"),
        ((502, {}), SecretUnavailable, "HTTP 502"),
        ((200, {"version": "x"}), SecretUnavailable, "malformed"),
        ((200, {"version": 1}), SecretUnavailable, "malformed"),
        (TransportError("the foundation did not answer in time"), SecretUnavailable, "in time"),
    ],
)
def test_failures_map_to_one_clear_error(response, error, message):
    async def scenario():
        client = make(Script(response))
        with pytest.raises(error, match=message) as excinfo:
            await client.get("k")
        assert excinfo.value.name == "k"
        assert excinfo.value.__cause__ is None

    run(scenario())


def test_not_found_is_not_hidden_by_a_stale_value():
    script = Script(ok("v1"), (404, {}))

    async def scenario():
        client = make(script, ttl=0.0)
        await client.get("k")
        with pytest.raises(SecretNotFound):
            await client.get("k")

    run(scenario())


def test_concurrent_gets_share_one_request():
    script = Script(ok("v1"))

    async def scenario():
        client = make(script)
        values = await asyncio.gather(*(client.get("k") for _ in range(20)))
        assert values == ["v1"] * 20

    run(scenario())
    assert script.calls == 1


def test_a_sealed_answer_is_opened_with_the_private_key():
    private, public = generate_keypair()
    envelope = seal(b"sealed-value", load_public_key(public), sealing_context("k", 3))
    script = Script((200, {"name": "k", "version": 3, "sealed": envelope}))
    settings = ClientSettings(agent_name="ai_manager", agent_token="fdn_test", private_key=private)

    async def scenario():
        client = make(script, settings)
        assert await client.get("k") == "sealed-value"

    run(scenario())


def test_a_sealed_answer_without_a_key_is_a_configuration_error():
    _, public = generate_keypair()
    envelope = seal(b"x", load_public_key(public), sealing_context("k", 1))
    script = Script((200, {"name": "k", "version": 1, "sealed": envelope}))

    async def scenario():
        with pytest.raises(ConfigurationError, match="FOUNDATION_AGENT_PRIVATE_KEY"):
            await make(script).get("k")

    run(scenario())


def test_a_sealed_answer_for_another_key_is_unavailable_not_garbage():
    _, public = generate_keypair()
    wrong_private, _ = generate_keypair()
    envelope = seal(b"x", load_public_key(public), sealing_context("k", 1))
    script = Script((200, {"name": "k", "version": 1, "sealed": envelope}))
    settings = ClientSettings(agent_name="a", agent_token="fdn_test", private_key=wrong_private)

    async def scenario():
        with pytest.raises(SecretUnavailable, match="cannot be opened"):
            await make(script, settings).get("k")

    run(scenario())


def test_a_rotation_notice_drops_only_an_older_version():
    script = Script(ok("v1"), ok("v2", 2))

    async def scenario():
        client = make(script)
        await client.get("k")
        client._on_notice(b'{"name": "k", "version": 1}')  # the version we have
        assert client.cached_version("k") == 1
        client._on_notice(b"not json")
        client._on_notice(b'{"name": "k"}')
        assert client.cached_version("k") == 1
        client._on_notice(b'{"name": "k", "version": 2}')
        assert client.cached_version("k") is None
        assert await client.get("k") == "v2"

    run(scenario())


def test_a_token_is_required():
    with pytest.raises(ConfigurationError, match="FOUNDATION_AGENT_TOKEN"):
        SecretsClient(ClientSettings(agent_name="a"))


def test_negative_windows_are_refused():
    with pytest.raises(ValueError, match="negative"):
        SecretsClient(SETTINGS, ttl=-1)


def test_the_cached_path_is_fast():
    script = Script(ok("v1"))

    async def scenario():
        client = make(script)
        await client.get("k")
        started = time.perf_counter()
        for _ in range(10_000):
            await client.get("k")
        return (time.perf_counter() - started) / 10_000

    assert run(scenario()) < 50e-6


def test_one_caller_cancelled_does_not_cancel_the_others():
    release = asyncio.Event()

    async def slow():
        await release.wait()
        return ok("v1")

    async def scenario():
        client = make(Script(slow))
        first = asyncio.create_task(client.get("k"))
        second = asyncio.create_task(client.get("k"))
        await asyncio.sleep(0.01)
        first.cancel()
        await asyncio.sleep(0.01)
        release.set()
        assert await second == "v1"
        with pytest.raises(asyncio.CancelledError):
            await first

    run(scenario())


def test_an_answer_older_than_an_announced_version_is_not_cached_as_fresh():
    script = Script(ok("v1", 1), ok("v2", 2))

    async def scenario():
        client = make(script)
        client._on_notice(b'{"name": "k", "version": 2}')  # arrives before the answer
        assert await client.get("k") == "v1"
        assert await client.get("k") == "v2"  # v1 was not trusted: asked again
        assert await client.get("k") == "v2"

    run(scenario())
    assert script.calls == 2


def test_a_deletion_notice_drops_the_value_and_resets_the_version():
    script = Script(ok("v3", 3), ok("new", 1))

    async def scenario():
        client = make(script)
        client._on_notice(b'{"name": "k", "version": 3}')
        assert await client.get("k") == "v3"
        client._on_notice(b'{"name": "k", "version": 0}')
        assert client.cached_version("k") is None
        assert await client.get("k") == "new"
        assert await client.get("k") == "new"

    run(scenario())
    assert script.calls == 2
