"""``SecretsClient``: an agent's secrets, cached, refreshed on rotation, opened when sealed.

A ``get`` answers from memory while the entry is fresh (``ttl``, 60 s by default). Past that it asks
the site's agent API. When the site cannot answer, a value fetched less than ``stale_if_error``
ago is still served (an outage of Vault should not stop a running agent); past that window the
caller gets :class:`SecretUnavailable`. A rotation notice on Redis pub/sub (name and version,
never the value) drops the cached entry, so the next ``get`` fetches the new value at once.

Every read sends a fresh nonce. With the site's key pinned (``FOUNDATION_SITE_PUBLIC_KEY``), an
answer is accepted only when the site signed it for that nonce, this agent and this secret name
(``_answers``): a value sealed by someone else, or an answer captured earlier, is refused. Whether
pinned or not, versions only go forward: an answer older than a version already seen or announced
is refused, until a deletion notice says the name starts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from foundation_client._config import ClientSettings
from foundation_client._exceptions import (
    ConfigurationError,
    InvalidArgument,
    SealingError,
    SecretAccessDenied,
    SecretNotFound,
    SecretUnavailable,
    TransportError,
)
from foundation_client._http import AiohttpTransport, Transport
from foundation_client.connections import connect_notices
from foundation_client.protocol import (
    PROTOCOL_API_PATH,
    SECRETS_API_PATH,
    SECRETS_ROTATION_CHANNEL,
    RotationNotice,
    SecretAnswer,
    check_site,
    sealing_context,
)
from foundation_client.protocol.answers import new_nonce
from foundation_client.protocol.sealing import open_sealed

logger = logging.getLogger("foundation_client.secrets")


@dataclass(slots=True)
class _Entry:
    value: str
    version: int
    fresh_until: float
    stale_until: float


class SecretsClient:
    """Read secrets through the foundation's agent API. Use as ``async with``."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        ttl: float = 60.0,
        stale_if_error: float = 300.0,
        timeout: float = 5.0,
        transport: Transport | None = None,
        redis: aioredis.Redis | None = None,
        listen: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` measures ``ttl`` and ``stale_if_error`` (seconds, monotonic): a test moves
        a clock of its own across the windows instead of sleeping through them."""
        if ttl < 0 or stale_if_error < 0:
            raise InvalidArgument("ttl and stale_if_error must not be negative")
        if not settings.agent_token:
            raise ConfigurationError("FOUNDATION_AGENT_TOKEN", "is required to read secrets")
        self.settings = settings
        self.ttl = ttl
        self.stale_if_error = stale_if_error
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Future[_Entry]] = {}
        # Per name, the newest version fetched or announced: no older answer is accepted after it
        # (a replayed or rolled-back answer), until a deletion notice removes the name's floor.
        self._floor: dict[str, int] = {}
        self._site_keys = settings.site_public_keys()
        if not self._site_keys:
            logger.warning(
                "FOUNDATION_SITE_PUBLIC_KEY is not set: secret answers are accepted without "
                "proof that the site made them for this request; pin the key create_agent printed"
            )
        self._http: Transport = transport or AiohttpTransport(
            settings.api_url, settings.agent_token, timeout
        )
        self._owns_http = transport is None
        self._redis = redis
        self._owns_redis = redis is None
        self._listen = listen
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._protocol_checked = False

    async def __aenter__(self) -> SecretsClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Check that the site serves this client's protocol version (``ProtocolMismatch`` if
        not), then listen for rotation notices (returns once subscribed, or after 2 s)."""
        await self._check_protocol()
        if not self._listen or self._listener is not None:
            return
        if self._redis is None:
            self._redis = connect_notices(self.settings.redis_url)
        self._listener = asyncio.create_task(self._listen_for_rotations(), name="secrets-rotation")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout=2.0)

    async def _check_protocol(self) -> None:
        """The site's served range (``PROTOCOL_API_PATH``), checked once. A site that answers
        404 predates the range; one that cannot be reached now is checked by the next start."""
        if self._protocol_checked:
            return
        try:
            status, body = await self._http.get_json(PROTOCOL_API_PATH)
        except TransportError as exc:
            logger.warning("could not ask the site which protocol versions it serves: %s", exc)
            return
        self._protocol_checked = True
        check_site(None if status == 404 else body)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._owns_http:
            await self._http.close()
        if self._owns_redis and self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def get(self, name: str) -> str:
        """The current value of secret ``name``."""
        entry = self._cache.get(name)
        if entry is not None and self._clock() < entry.fresh_until:
            return entry.value
        return (await self._refresh(name, entry)).value

    def cached_version(self, name: str) -> int | None:
        entry = self._cache.get(name)
        return entry.version if entry else None

    async def _refresh(self, name: str, stale: _Entry | None) -> _Entry:
        # Concurrent callers of one name share one request, run as a task of its own so that a
        # caller being cancelled never cancels the others.
        task = self._inflight.get(name)
        if task is None:
            task = asyncio.ensure_future(self._load(name, stale))
            self._inflight[name] = task
        return await asyncio.shield(task)

    async def _load(self, name: str, stale: _Entry | None) -> _Entry:
        try:
            entry = await self._fetch(name)
            if entry.version < self._floor.get(name, 0):
                # Most often an answer the site made just before a rotation whose notice overtook
                # it on the way: ask once more before calling it a rollback.
                entry = await self._fetch(name)
                floor = self._floor.get(name, 0)
                if entry.version < floor:
                    reason = (
                        f"version {entry.version} is older than version {floor} already seen or "
                        "announced (a replayed or rolled-back answer)"
                    )
                    logger.warning("refused an answer for %r: %s", name, reason)
                    raise SecretUnavailable(name, reason)
        except SecretUnavailable as exc:
            if stale is not None and self._clock() < stale.stale_until:
                logger.warning("serving cached %r inside its stale window: %s", name, exc.reason)
                return stale
            raise
        finally:
            # Before the task completes, so that a later caller never joins a finished fetch.
            self._inflight.pop(name, None)
        self._floor[name] = max(entry.version, self._floor.get(name, 0))
        self._cache[name] = entry
        return entry

    async def _fetch(self, name: str) -> _Entry:
        nonce = new_nonce()
        path = f"{SECRETS_API_PATH}{quote(name, safe='')}?nonce={nonce}"
        try:
            status, body = await self._http.get_json(path)
        except TransportError as exc:
            raise SecretUnavailable(name, str(exc)) from None
        if status == 200:
            return self._entry(name, nonce, body)
        detail = str(body.get("detail", ""))
        if status == 404:
            raise SecretNotFound(name)
        if status in (401, 403):
            raise SecretAccessDenied(name, detail or f"HTTP {status}")
        raise SecretUnavailable(name, detail or f"the foundation answered HTTP {status}")

    def _entry(self, name: str, nonce: str, body: dict[str, Any]) -> _Entry:
        try:
            answer = SecretAnswer.from_body(body)
        except ValueError:
            raise SecretUnavailable(name, "the foundation sent a malformed answer") from None
        refusal = self._refusal(name, nonce, answer)
        if refusal is not None:
            logger.warning("refused an answer for %r: %s", name, refusal)
            raise SecretUnavailable(name, refusal)
        if answer.sealed is not None:
            if not self.settings.private_key:
                raise ConfigurationError(
                    "FOUNDATION_AGENT_PRIVATE_KEY", "the site seals values to this agent's key"
                )
            try:
                value = open_sealed(
                    dict(answer.sealed),
                    self.settings.private_key,
                    sealing_context(name, answer.version),
                ).decode("utf-8")
            except (SealingError, UnicodeDecodeError) as exc:
                raise SecretUnavailable(name, f"sealed value cannot be opened: {exc}") from None
        else:
            assert answer.value is not None  # a SecretAnswer carries one of the two
            value = answer.value
        now = self._clock()
        return _Entry(value, answer.version, now + self.ttl, now + self.ttl + self.stale_if_error)

    def _refusal(self, name: str, nonce: str, answer: SecretAnswer) -> str | None:
        """Why ``answer`` is not the site's answer to this request (None: it is)."""
        pinned = bool(self._site_keys)
        if pinned:
            if answer.signature is None:
                return "unsigned answer (the site's key is pinned): forged, or from an older site"
            if not answer.verify(self._site_keys):
                return "forged or altered answer: its signature does not verify with the site's key"
        # Unpinned, these fields prove nothing (anyone may write them), but a mismatch present is
        # still never the site's answer to this request.
        if (pinned or answer.nonce) and answer.nonce != nonce:
            return "replayed answer: it was made for another request (its nonce is not ours)"
        if (pinned or answer.agent) and answer.agent != self.settings.agent_name:
            return f"answer made for agent {answer.agent!r}, not {self.settings.agent_name!r}"
        if answer.name != name:
            return f"answer for secret {answer.name!r}, not the one asked for"
        return None

    async def _listen_for_rotations(self) -> None:
        delay = 0.5
        while True:
            try:
                assert self._redis is not None
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(SECRETS_ROTATION_CHANNEL)
                    if not self._subscribed.is_set() and self._cache:
                        # Notices sent while we were not listening are lost: distrust the cache.
                        for entry in self._cache.values():
                            entry.fresh_until = 0.0
                    self._subscribed.set()
                    delay = 0.5
                    async for message in pubsub.listen():
                        self._on_notice(message.get("data"))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                # Without notices the TTL still bounds staleness; keep trying to resubscribe.
                logger.warning("rotation notices interrupted (%s); retrying in %.1fs", exc, delay)
                self._subscribed.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _on_notice(self, raw: Any) -> None:
        try:
            notice = RotationNotice.decode(raw)
        except (ValueError, TypeError):
            logger.warning("ignored a malformed rotation notice")
            return
        if notice.version == 0:  # deleted: a re-created secret starts again at version 1
            self._floor.pop(notice.name, None)
        elif notice.version > self._floor.get(notice.name, 0):
            self._floor[notice.name] = notice.version
        entry = self._cache.get(notice.name)
        if entry is not None and entry.version != notice.version:
            del self._cache[notice.name]
            logger.info(
                "secret %r changed (version %d); cache dropped", notice.name, notice.version
            )
