"""The agent API's granted read as one coroutine, on the served ASGI application's event loop.

``secrets_app.asgi`` tries this first for ``GET /api/v1/secrets/<name>``. It answers only the
common case, a read that is granted and succeeds: a valid token, an active agent with a grant,
a name with a current version, stored in Vault (or in the site's value cache), read directly
and answered. Everything else (a missing or bad token, a refusal, a missing secret, the local
backend, an agent read quota, a Vault error or a proxy in the way) returns None before anything
is written, and the request goes to ``serve_read`` in a worker thread, the one place that
refuses, rate-limits and audits failures. So the async path writes one row per answer, the same
row ``serve_read`` writes (``audit_app.services.row_values``), and only after the answer is made.

Why: with every cache off, a read waits five times in a row (the agent's request, the look-up,
Vault, the audit insert, the answer), and on our machines each wait in a worker thread cost about
twice what it costs on the event loop, the thread hand-offs included: 3.43 ms against 2.2 ms for
the same work (docs/secrets.md, "Speed").

PostgreSQL only (psycopg's async connections, kept idle per event loop, as many as Django's pool);
on SQLite every read takes the thread. ``SECRETS_ASYNC_READS=false`` turns it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import certifi
import psycopg
import psycopg.pq
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection

from agents_app.models import Agent, hash_token
from agents_app.services import auth_generation, cached_agent, remember_agent
from audit_app import services as audit
from foundation_client.protocol import (
    ANSWER_NONCE,
)
from secrets_app import services, value_cache
from secrets_app.api import signed_answer
from secrets_app.backends import vault
from secrets_app.models import CURRENT_QUERY, SecretMetadata, is_secret_name

logger = logging.getLogger("foundation.secrets.fast_read")

#: How long a snapshot of the Vault client's token and TLS settings is used before a worker
#: thread is asked for a fresh one (``vault.access()``: renewal and AppRole log-in stay there).
ACCESS_SECONDS = 10.0
#: After Vault could not be reached, how long reads go straight to the threads' path.
VAULT_DOWN_SECONDS = 5.0


def enabled() -> bool:
    return bool(
        settings.SECRETS_ASYNC_READS
        and connection.vendor == "postgresql"
        and not settings.RATELIMIT_AGENT_READS
        # Django sets the role on its own connections; these would not.
        and not settings.DATABASES["default"].get("OPTIONS", {}).get("assume_role")
    )


async def serve(
    token: str | None, name: str, nonce: str | None, ip_address: str | None, user_agent: str | None
) -> tuple[int, dict[str, Any]] | None:
    """The answer to a granted, successful read, audited; None: let ``serve_read`` answer."""
    if not token or not is_secret_name(name):
        return None
    if nonce is not None and not ANSWER_NONCE.fullmatch(nonce):
        return None
    body: dict[str, Any] | None = None  # set once the row is committed: the read is ours
    auditing = False  # the insert is on its way: from here on the read is never handed over
    try:
        resources = await _resources()
        if resources.busy.locked():  # every connection this loop may hold is in use
            return None
        async with resources.busy, resources.pool.connection() as conn:
            agent, secret = await _look_up(conn, hash_token(token), name)
            if (
                agent is None
                or not agent.is_active
                or not agent.may_read(name)
                or secret is None
                or secret.current_version is None
                or secret.storage_backend != "vault"
            ):
                return None
            version = secret.current_version
            value = value_cache.get(secret.pk, version)
            from_vault = value is None
            if value is None:
                value = await _read_vault(resources, secret, version)
                if value is None:
                    return None
            answer = signed_answer(agent, name, version, nonce or "", value)
            # The answer is made; only now is the read audited, durably, before it leaves.
            auditing = True
            await audit.insert_async(
                conn,
                audit.row_values(
                    "secrets.read",
                    agent,
                    services.audit_resource(name),
                    "read",
                    success=True,
                    user_agent=user_agent,
                    ip_address=ip_address,
                    version=version,
                ),
            )
            body = answer
        await _after_read(secret, agent, value if from_vault else None)
    except Exception as exc:
        if body is None and not auditing:  # nothing written: the thread's path answers
            logger.info("async read of %r handed to the thread: %s", name, type(exc).__name__)
            return None
        if body is None:
            # The row may or may not be in: refused, rather than read again and audited twice.
            logger.warning("async read of %r could not be audited: %s", name, type(exc).__name__)
            return 503, {"detail": "the read could not be audited"}
        logger.warning("after an async read of %r: %s", name, type(exc).__name__)
    return 200, body


async def _after_read(secret: SecretMetadata, agent: Agent, read: str | None) -> None:
    """What ``read_for_agent`` does after a read: a value read from Vault kept (when the cache
    is on; a hit is not put again, which would push its expiry on), and the secret's last
    reader noted for the admin list (once a minute, in a thread)."""
    if read is not None and secret.current_version is not None:
        value_cache.put(secret.pk, secret.current_version, read)
    if services.mark_read_due(secret, agent):
        await sync_to_async(_mark_read, thread_sensitive=False)(secret, agent)


async def _look_up(conn: Any, token_hash: str, name: str) -> tuple[Agent | None, Any]:
    found, agent = cached_agent(token_hash)
    if found:
        cursor = await conn.execute(CURRENT_QUERY, [name])
        return agent, SecretMetadata.from_current(name, await cursor.fetchone())
    generation = auth_generation()
    sql, params = Agent.lookup_query(token_hash, name)
    cursor = await conn.execute(sql, params)
    agent, secret = Agent.from_lookup(await cursor.fetchall(), name)
    remember_agent(token_hash, agent, generation)
    return agent, secret


def _mark_read(secret: SecretMetadata, agent: Agent) -> None:
    try:
        services.mark_read(secret, agent)
    finally:
        close_old_connections()


# --- Per event loop: connections, an HTTP session, Vault access ------------------------


class _Connections:
    """This loop's idle PostgreSQL connections, at most ``DATABASE_POOL_SIZE`` kept.

    Not psycopg_pool's async pool: its maintenance tasks are cancelled when ``asyncio.run``
    ends, before the pool can be closed, and its connections outlived the loop (a test database
    could not be dropped). A connection here is opened when none is idle, and closed when it
    comes back broken, in a transaction, or beyond the number kept.
    """

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.closing: set[asyncio.Future[None]] = set()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self.idle:
            conn = self.idle.pop()
        else:
            conn = await psycopg.AsyncConnection.connect(**self.params)
        try:
            yield conn
        except BaseException as exc:
            if isinstance(exc, psycopg.Error) or conn.broken:
                await conn.close()
                raise
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await conn.close()  # cancelled mid-statement: not fit to be used again
                raise
            self._keep(conn)
            raise
        self._keep(conn)

    def _keep(self, conn: psycopg.AsyncConnection[Any]) -> None:
        idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        if idle and not conn.closed and len(self.idle) < settings.DATABASE_POOL_SIZE:
            self.idle.append(conn)
        else:
            self.closing.add(asyncio.ensure_future(conn.close()))

    async def close(self) -> None:
        while self.idle:
            await self.idle.pop().close()
        for closing in list(self.closing):
            with contextlib.suppress(BaseException):
                await closing


class _Resources:
    def __init__(self, connections: _Connections, http: aiohttp.ClientSession) -> None:
        self.pool = connections
        self.http = http
        # At most DATABASE_POOL_SIZE reads at once hold a connection; more go to the threads.
        self.busy = asyncio.Semaphore(settings.DATABASE_POOL_SIZE)
        self.access: vault.Access | None = None
        self.access_at = 0.0
        self.access_lock = asyncio.Lock()  # one refresh of the snapshot at a time
        self.vault_down_until = 0.0  # after a transport error, the threads' path reads Vault

    async def close(self) -> None:
        for closing in (self.http.close, self.pool.close):
            with contextlib.suppress(Exception):
                await closing()


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[_Resources, Any]] = (
    weakref.WeakKeyDictionary()
)


async def _resources() -> _Resources:
    loop = asyncio.get_running_loop()
    held = _per_loop.get(loop)
    if held is None:
        params = connection.get_connection_params()
        for key in ("cursor_factory", "context"):  # Django's sync classes
            params.pop(key, None)
        # psycopg's default: a query run five times on a connection is prepared, its plan
        # kept (the look-up's plan cost as much as its execution), unless the operator set it
        # (None for PgBouncer in transaction mode, as Django's docs say).
        if "prepare_threshold" not in settings.DATABASES["default"].get("OPTIONS", {}):
            params.pop("prepare_threshold", None)
        connections = _Connections({**params, "autocommit": True})
        resources = _Resources(connections, aiohttp.ClientSession())
        keeper = _closed_with_the_loop(resources)
        await keeper.__anext__()
        held = _per_loop.setdefault(loop, (resources, keeper))
    return held[0]


async def _closed_with_the_loop(resources: _Resources) -> AsyncIterator[None]:
    """Held open for the loop's life: ``asyncio.run`` (Uvicorn's, a test's) closes a loop's
    async generators before the loop, and so the pool and the session with it."""
    try:
        yield
        await asyncio.Event().wait()  # pragma: no cover - never resumed
    finally:
        _per_loop.pop(asyncio.get_running_loop(), None)
        await resources.close()


async def _current_access(resources: _Resources) -> vault.Access:
    async with resources.access_lock:
        now = time.monotonic()
        if resources.access is None or now - resources.access_at > ACCESS_SECONDS:
            resources.access = await sync_to_async(vault.access, thread_sensitive=False)()
            resources.access_at = now
        return resources.access


async def _read_vault(resources: _Resources, secret: SecretMetadata, version: int) -> str | None:
    """The value of ``version`` from Vault, or None for anything but a clean answer."""
    if time.monotonic() < resources.vault_down_until:
        return None
    access = await _current_access(resources)
    if not access.direct:
        return None
    headers = {"X-Vault-Request": "true", "X-Vault-Token": access.token}
    if access.namespace:
        headers["X-Vault-Namespace"] = access.namespace
    url = f"{access.base_uri.rstrip('/')}{vault.data_path(secret)}?"
    url += urlencode({"version": str(version)})
    try:
        async with resources.http.get(
            url,
            headers=headers,
            ssl=_tls(access) if urlsplit(access.base_uri).scheme == "https" else False,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=settings.VAULT_TIMEOUT),
        ) as response:
            if response.status != 200:
                if response.status == 403:
                    resources.access = None  # a token renewed or replaced: ask again next time
                return None
            body = json.loads(await response.read())
    except (aiohttp.ClientError, TimeoutError):
        # Not twice the wait while Vault is away: the threads' path reads it (and says so).
        resources.vault_down_until = time.monotonic() + VAULT_DOWN_SECONDS
        return None
    data = (body.get("data") or {}).get("data") or {}
    value = data.get("value")
    return value if isinstance(value, str) else None


_tls_contexts: dict[tuple[Any, Any], ssl.SSLContext] = {}


def _tls(access: vault.Access) -> ssl.SSLContext:
    """requests' verification, as hvac is configured: a CA file or directory, certifi's bundle
    by default, a client certificate when one is set."""
    key = (access.verify, access.cert)
    context = _tls_contexts.get(key)
    if context is None:
        if access.verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # hvac was told not to verify (VAULT_SKIP_VERIFY)
        else:
            where = access.verify if isinstance(access.verify, str) else certifi.where()
            context = (
                ssl.create_default_context(capath=where)
                if os.path.isdir(where)
                else ssl.create_default_context(cafile=where)
            )
        if access.cert:
            cert, key_file = access.cert if isinstance(access.cert, tuple) else (access.cert, None)
            context.load_cert_chain(cert, key_file)
        _tls_contexts[key] = context
    return context
