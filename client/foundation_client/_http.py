"""The client's HTTP transport to the site's agent API.

A small seam: ``SecretsClient`` (and later clients) speak to a ``Transport`` that answers
``(status, JSON body)`` or raises :class:`TransportError` with a reason fit for a user; the
default one is aiohttp, at half the per-request cost of httpx's async client (docs/secrets.md,
"Speed"), which matters on an agent's uncached reads.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import aiohttp

from foundation_client._exceptions import TransportError


class Transport(Protocol):
    async def get_json(self, path: str) -> tuple[int, dict[str, Any]]: ...

    async def close(self) -> None: ...


class AiohttpTransport:
    """Keep-alive HTTP to the site with the agent's bearer token."""

    def __init__(self, base_url: str, token: str, timeout: float) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop, as aiohttp requires.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._session

    async def get_json(self, path: str) -> tuple[int, dict[str, Any]]:
        session = self._ensure_session()
        try:
            async with session.get(self._base_url + path) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError:
            raise TransportError("the foundation did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"cannot reach the foundation ({type(exc).__name__})") from None
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        return status, body if isinstance(body, dict) else {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
