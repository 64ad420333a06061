"""SecretsClient's own logic (cache, stale window, error mapping, what it refuses) against a
scripted transport.

The real site, Redis and OpenBao are exercised by tests/test_secrets_end_to_end.py; the same
attacks on the real site's answers by secrets_app/tests/test_api.py and test_asgi_route.py.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from foundation_client import (
    ClientSettings,
    ConfigurationError,
    SecretAccessDenied,
    SecretNotFound,
    SecretsClient,
    SecretUnavailable,
    TransportError,
    generate_keypair,
)
from foundation_client.protocol import ANSWER_NONCE, SecretAnswer, sealing_context
from foundation_client.protocol.sealing import load_public_key, seal

SETTINGS = ClientSettings(agent_name="ai_manager", agent_token="fdn_test")
SITE_KEY = Ed25519PrivateKey.generate()
SITE_PUBLIC_KEY = base64.urlsafe_b64encode(SITE_KEY.public_key().public_bytes_raw()).decode()
AGENT_PRIVATE, AGENT_PUBLIC = generate_keypair()
PINNED = ClientSettings(
    agent_name="ai_manager",
    agent_token="fdn_test",
    private_key=AGENT_PRIVATE,
    site_public_key=SITE_PUBLIC_KEY,
)


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
            return await answer(path)
        return answer

    async def close(self) -> None:
        pass


def ok(value: str, version: int = 1):
    return (200, {"name": "k", "version": version, "value": value})


def nonce_of(path: str) -> str:
    return parse_qs(urlsplit(path).query)["nonce"][0]


def answer_for(
    nonce: str,
    value: str = "v1",
    *,
    version: int = 1,
    name: str = "k",
    agent: str = "ai_manager",
    key: Ed25519PrivateKey | None = SITE_KEY,
    sealed: bool = True,
):
    """An answer as the site makes it (sealed to the agent, signed by ``key``), for ``nonce``."""
    envelope = (
        seal(value.encode(), load_public_key(AGENT_PUBLIC), sealing_context(name, version))
        if sealed
        else None
    )
    answer = SecretAnswer(
        agent=agent,
        name=name,
        version=version,
        nonce=nonce,
        sealed=envelope,
        value=None if sealed else value,
    )
    return (200, (answer.signed_with(key) if key else answer).to_body())


def site(value: str = "v1", **kwargs):
    """A scripted answer made for whatever nonce the request carries."""

    async def answer(path: str):
        return answer_for(nonce_of(path), value, **kwargs)

    return answer


def make(script: Script, settings: ClientSettings = SETTINGS, **kwargs) -> SecretsClient:
    return SecretsClient(settings, transport=script, listen=False, **kwargs)


class Clock:
    """The client's clock, moved on by the test: a window is crossed exactly, with no sleeping,
    so a slow or loaded machine cannot land a read on the wrong side of it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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
    clock = Clock()

    async def scenario():
        client = make(script, ttl=5, clock=clock)
        assert await client.get("k") == "v1"
        clock.advance(4.5)
        assert await client.get("k") == "v1"  # still fresh: from memory
        assert script.calls == 1
        clock.advance(0.5)  # the TTL is over
        assert await client.get("k") == "v2"
        assert client.cached_version("k") == 2

    run(scenario())


def test_a_stale_value_is_served_while_the_site_is_down_then_unavailable():
    script = Script(ok("v1"), TransportError("cannot reach the foundation (ClientConnectorError)"))
    clock = Clock()

    async def scenario():
        client = make(script, ttl=10, stale_if_error=60, clock=clock)
        assert await client.get("k") == "v1"
        clock.advance(10)  # the TTL is over: the site is asked, and cannot be reached
        assert await client.get("k") == "v1"  # stale, inside the window
        clock.advance(59.5)
        assert await client.get("k") == "v1"  # stale, at the window's last moment
        assert script.calls == 3  # the site was asked each time: stale only while it fails
        clock.advance(0.5)  # past the window
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


def test_a_cached_value_is_answered_without_a_request_or_a_pause():
    """Its speed is benchmarks/secrets_read.py's to measure (``cached_get_us``): a wall-clock
    limit here, under coverage on a loaded machine, would time the tracer. What the cached path
    must never do is ask the site or suspend (a lock, a task, I/O): each get ends in one step."""
    script = Script(ok("v1"))

    async def scenario():
        client = make(script)
        await client.get("k")
        for _ in range(1000):
            get = client.get("k")
            with pytest.raises(StopIteration) as finished:
                get.send(None)  # one step of the coroutine, outside the event loop
            assert finished.value.value == "v1"

    run(scenario())
    assert script.calls == 1


def test_one_caller_cancelled_does_not_cancel_the_others():
    release = asyncio.Event()

    async def slow(path):
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


def test_an_answer_older_than_an_announced_version_is_asked_for_again():
    script = Script(ok("v1", 1), ok("v2", 2))

    async def scenario():
        client = make(script)
        client._on_notice(b'{"name": "k", "version": 2}')  # arrives before the answer
        assert await client.get("k") == "v2"  # v1 was not accepted: asked again at once
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


# --- Signed answers and version floors ---------------------------------------------------------


def refusal(script: Script, settings: ClientSettings = PINNED, name: str = "k") -> str:
    """The reason the client refuses the scripted answer (it must refuse it)."""

    async def scenario():
        with pytest.raises(SecretUnavailable) as excinfo:
            await make(script, settings).get(name)
        return excinfo.value.reason

    return run(scenario())


def test_each_read_sends_a_fresh_nonce():
    script = Script(site())

    async def scenario():
        client = make(script, PINNED, ttl=0)
        for _ in range(3):
            assert await client.get("k") == "v1"

    run(scenario())
    nonces = [nonce_of(path) for path in script.paths]
    assert len(set(nonces)) == 3
    assert all(ANSWER_NONCE.match(nonce) for nonce in nonces)


@pytest.mark.parametrize("sealed", [True, False])
def test_a_pinned_client_accepts_an_answer_signed_for_its_request(sealed):
    async def scenario():
        client = make(Script(site("signed-value", version=4, sealed=sealed)), PINNED)
        assert await client.get("k") == "signed-value"
        assert client.cached_version("k") == 4

    run(scenario())


def test_a_value_sealed_by_someone_else_is_refused_when_unsigned():
    # Anyone holding the agent's public key can seal a value that opens; only the signature
    # tells the site's answer from theirs.
    assert "unsigned answer" in refusal(Script(site("attacker-value", key=None)))


def test_an_answer_signed_with_another_key_is_refused():
    other = Ed25519PrivateKey.generate()
    reason = refusal(Script(site("attacker-value", key=other)))
    assert reason.startswith("forged or altered answer")


@pytest.mark.parametrize(
    ("field", "forged"),
    [("version", 9), ("name", "other"), ("agent", "other_agent"), ("nonce", "N" * 22)],
)
def test_an_answer_altered_after_signing_is_refused(field, forged):
    async def altered(path):
        status, body = answer_for(nonce_of(path))
        return status, body | {field: forged}

    assert refusal(Script(altered)).startswith("forged or altered answer")


def test_an_altered_ciphertext_is_refused_as_forged_before_it_is_opened():
    async def altered(path):
        status, body = answer_for(nonce_of(path))
        ciphertext = body["sealed"]["ciphertext"]
        body["sealed"]["ciphertext"] = ("B" if ciphertext[0] == "A" else "A") + ciphertext[1:]
        return status, body

    assert refusal(Script(altered)).startswith("forged or altered answer")


def test_a_replayed_answer_is_refused():
    captured = answer_for("N1-captured-earlier-0001")  # a genuine answer to another request
    assert "replayed answer" in refusal(Script(captured))


def test_an_answer_for_another_agent_is_refused():
    reason = refusal(Script(site(agent="other_agent")))
    assert reason == "answer made for agent 'other_agent', not 'ai_manager'"


def test_an_answer_for_another_secret_is_refused():
    reason = refusal(Script(site(name="other_secret")))
    assert reason == "answer for secret 'other_secret', not the one asked for"


def test_a_refused_answer_is_never_cached():
    script = Script(site(key=None), site("genuine"))

    async def scenario():
        client = make(script, PINNED)
        with pytest.raises(SecretUnavailable):
            await client.get("k")
        assert client.cached_version("k") is None
        assert await client.get("k") == "genuine"

    run(scenario())


def test_a_lower_version_after_a_higher_one_is_refused():
    # Signed for this very request: a site restored from an old backup, or a stale replica.
    script = Script(site("v2", version=2), site("v1", version=1))

    async def scenario():
        client = make(script, PINNED, ttl=0, stale_if_error=0)
        assert await client.get("k") == "v2"
        with pytest.raises(SecretUnavailable, match="version 1 is older than version 2"):
            await client.get("k")

    run(scenario())
    assert script.calls == 3  # the lower version was asked for once more before refusing it


def test_a_lower_version_than_a_notice_announced_is_refused():
    script = Script(site("v1", version=1))

    async def scenario():
        client = make(script, PINNED)
        client._on_notice(b'{"name": "k", "version": 3}')
        with pytest.raises(SecretUnavailable, match="version 1 is older than version 3"):
            await client.get("k")

    run(scenario())


def test_the_version_floor_is_kept_after_a_rotation_notice_drops_the_value():
    script = Script(site("v2", version=2), site("v1", version=1))

    async def scenario():
        client = make(script, PINNED)
        assert await client.get("k") == "v2"
        client._on_notice(b'{"name": "k", "version": 1}')  # not deletion: the floor stays
        assert client.cached_version("k") is None
        with pytest.raises(SecretUnavailable, match="older than version 2"):
            await client.get("k")

    run(scenario())


def test_after_a_deletion_notice_a_recreated_secret_at_version_1_is_accepted():
    script = Script(site("old", version=5), site("recreated", version=1))

    async def scenario():
        client = make(script, PINNED)
        assert await client.get("k") == "old"
        client._on_notice(b'{"name": "k", "version": 0}')
        assert await client.get("k") == "recreated"
        assert client.cached_version("k") == 1

    run(scenario())


def test_floors_are_per_secret_name():
    script = Script(site("a5", version=5, name="a"), site("b1", version=1, name="b"))

    async def scenario():
        client = make(script, PINNED)
        assert await client.get("a") == "a5"
        assert await client.get("b") == "b1"

    run(scenario())


def test_an_unpinned_client_warns_once_and_accepts_what_an_older_site_sends(caplog):
    caplog.set_level(logging.WARNING, "foundation_client.secrets")
    script = Script(ok("v1"))

    async def scenario():
        client = make(script, ttl=0)
        assert await client.get("k") == "v1"
        assert await client.get("k") == "v1"

    run(scenario())
    warnings = [r.getMessage() for r in caplog.records if "FOUNDATION_SITE_PUBLIC_KEY" in r.message]
    assert len(warnings) == 1


def test_an_unpinned_client_still_refuses_a_visible_replay_and_lower_versions():
    settings = ClientSettings(agent_name="ai_manager", agent_token="t", private_key=AGENT_PRIVATE)
    assert "replayed answer" in refusal(Script(answer_for("N1-captured-earlier-0001")), settings)
    script = Script(site("v2", version=2), answer_for("", "v1", version=1, key=None))

    async def scenario():
        client = make(script, settings, ttl=0, stale_if_error=0)
        assert await client.get("k") == "v2"
        with pytest.raises(SecretUnavailable, match="older than version 2"):
            await client.get("k")

    run(scenario())
