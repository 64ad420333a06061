"""The agent API's granted read as one coroutine, on the served ASGI application's event loop.

``secrets_app.asgi`` tries this first for ``GET /api/v1/secrets/<name>``. It answers the common
case, a read that is granted and succeeds: a valid token, an active agent with a grant, a name
with a current version, stored in Vault (or in the site's value cache). Everything else (a
missing or bad token, a refusal, a missing secret, the local backend, an agent read quota, a
proxy in the way, Vault unreachable) returns None before anything is written, and the request
goes to ``serve_read`` in a worker thread, the one place that refuses, rate-limits and audits
failures.

Once the read is granted and a connection to Vault is in hand, its audit row (the row
``serve_read`` writes: ``audit_app.services.row_values``) is inserted and committed while Vault
is read, and the value leaves only when both are done. If Vault then fails, the threads' path
reads again and writes the outcome's row after the grant's (docs/secrets.md, "Two rows for one
read"): the log may say a value was given that was not, never the reverse.

Why: with every cache off, a read waits on the look-up, Vault and the durable audit insert;
in a worker thread each wait cost about twice what it costs here, and the insert's wait for the
disk overlaps Vault's answer (docs/secrets.md, "Speed").

PostgreSQL only (psycopg's async connections, kept idle per event loop, as many as Django's pool);
on SQLite every read takes the thread. ``SECRETS_ASYNC_READS=false`` turns it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import ssl
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import SplitResult, urlsplit

import certifi
import httptools
import psycopg
import psycopg.pq
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection
from psycopg import errors

from agents_app.models import Agent, hash_token
from agents_app.services import auth_generation, cached_agent, remember_agent
from audit_app import services as audit
from foundation_client.protocol import ANSWER_NONCE
from secrets_app import services, value_cache
from secrets_app.api import UnusableKey, agent_key, signed_answer
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
        and _vendor() == "postgresql"
        and not settings.RATELIMIT_AGENT_READS
        # Django sets the role on its own connections; these would not.
        and not settings.DATABASES["default"].get("OPTIONS", {}).get("assume_role")
    )


@functools.cache
def _vendor() -> str:
    # Once: on the event loop, ``connection`` is a new object for each request's task.
    return connection.vendor


async def serve(
    token: str | None, name: str, nonce: str | None, ip_address: str | None, user_agent: str | None
) -> tuple[int, dict[str, Any]] | None:
    """The answer to a granted, successful read, audited; None: let ``serve_read`` answer."""
    if not token or not is_secret_name(name):
        return None
    if nonce is not None and not ANSWER_NONCE.fullmatch(nonce):
        return None
    resources: _Resources | None = None
    try:
        resources = await _resources()
        if resources.busy.locked():  # every connection this loop may hold is in use
            return None
        async with resources.busy, resources.pool.connection() as db:
            agent, secret = await _look_up(db, hash_token(token), name, resources.prepare)
            if (
                agent is None
                or not agent.is_active
                or not agent.may_read(name)
                or secret is None
                or secret.current_version is None
                or secret.storage_backend != "vault"
                or not _sealable(agent)
            ):
                return None
            version = secret.current_version
            row = audit.row_values(
                "secrets.read",
                agent,
                services.audit_resource(name),
                "read",
                success=True,
                user_agent=user_agent,
                ip_address=ip_address,
                version=version,
            )
            value = value_cache.get(secret.pk, version)
            vault_at: _VaultEndpoint | None = None
            if value is None:
                vault_at = await _vault_endpoint(resources)
                if vault_at is None:  # Vault away, or a proxy in the way: the threads' path
                    return None
                # A connection in hand before the row is written: Vault unreachable is a
                # failure the threads' path answers and audits, with no row of ours.
                try:
                    vault_conn = await _vault_connection(resources, vault_at)
                except (OSError, TimeoutError) as exc:
                    resources.vault_trouble()
                    logger.info("async read of %r: Vault unreachable (%s)", name, exc)
                    return None
                uses = vault_conn.uses
            insert = audit.insert_async(db, row, prepare=resources.prepare)
            audited: int | BaseException
            read: str | BaseException | None = value
            if vault_at is None:  # the site's value cache had it
                try:
                    audited = await insert
                except Exception as exc:
                    audited = exc
            else:
                try:
                    # Granted: the row is written (and committed, durably) while Vault is
                    # read; the value leaves only once both are done.
                    audited, read = await asyncio.gather(
                        insert,
                        _read_vault(resources, vault_at, vault_conn, secret, version),
                        return_exceptions=True,
                    )
                finally:
                    # Cancelled before the read began: the connection is still this read's
                    # alone. (Once it began, the read keeps or closes it; another may hold it.)
                    if vault_conn.uses == uses:
                        vault_conn.close()
            if isinstance(audited, Exception):
                # Not used again: a prepared insert that failed (a column's type changed by a
                # migration, say) would fail on this connection every time.
                _database_trouble(resources, audited)
                await db.connection.close()
    except Exception as exc:  # nothing written: the thread's path answers
        if resources is not None:
            _database_trouble(resources, exc)
        logger.info("async read of %r handed to the thread: %s", name, type(exc).__name__)
        return None
    if isinstance(audited, BaseException):
        # The row may or may not be in: refused, rather than read again and audited twice.
        logger.warning("async read of %r could not be audited: %s", name, type(audited).__name__)
        return 503, {"detail": "the read could not be audited"}
    if not isinstance(read, str):
        # Granted and audited, but Vault did not answer cleanly: the threads' path reads it
        # again, with its precise errors, and writes the outcome's row after this one.
        why = type(read).__name__ if isinstance(read, BaseException) else "no clean answer"
        logger.info("async read of %r handed to the thread after its row: %s", name, why)
        return None
    try:
        body = signed_answer(agent, name, version, nonce or "", read)  # its key loads: _sealable
    except Exception as exc:  # the row is in: refused, not read and audited again
        logger.warning("async read of %r could not be signed: %s", name, type(exc).__name__)
        return 503, {"detail": "the answer could not be signed"}
    try:
        await _after_read(secret, agent, version, read if vault_at else None)
    except Exception as exc:
        logger.warning("after an async read of %r: %s", name, type(exc).__name__)
    return 200, body


def _database_trouble(resources: _Resources, exc: BaseException) -> None:
    """A pooler that does not keep prepared statements (PgBouncer in transaction mode before
    1.21, or without ``max_prepared_statements``): this loop prepares nothing from now on."""
    if isinstance(exc, (errors.InvalidSqlStatementName, errors.DuplicatePreparedStatement)):
        if resources.prepare is not False:
            logger.warning("prepared statements refused (%s): the async read stops preparing", exc)
        resources.prepare = False


def _sealable(agent: Agent) -> bool:
    """Whether the agent's registered key loads (none is fine): checked before anything is
    written, so that a key that cannot seal is refused, and audited, by the threads' path."""
    if not agent.public_key:
        return True
    try:
        agent_key(agent.public_key)
    except UnusableKey:
        return False
    return True


async def _after_read(secret: SecretMetadata, agent: Agent, version: int, read: str | None) -> None:
    """What ``read_for_agent`` does after a read: a value read from Vault kept (when the cache
    is on; a hit is not put again, which would push its expiry on), and the secret's last
    reader noted for the admin list (once a minute, in a thread)."""
    if read is not None:
        value_cache.put(secret.pk, version, read)
    if services.mark_read_due(secret, agent):
        await sync_to_async(_mark_read, thread_sensitive=False)(secret, agent)


async def _look_up(
    cursor: Any, token_hash: str, name: str, prepare: bool | None
) -> tuple[Agent | None, Any]:
    found, agent = cached_agent(token_hash)
    if found:
        await cursor.execute(CURRENT_QUERY, [name], prepare=prepare)
        return agent, SecretMetadata.from_current(name, await cursor.fetchone())
    generation = auth_generation()
    sql, params = Agent.lookup_query(token_hash, name)
    await cursor.execute(sql, params, prepare=prepare)
    agent, secret = Agent.from_lookup(await cursor.fetchall(), name)
    remember_agent(token_hash, agent, generation)
    return agent, secret


def _mark_read(secret: SecretMetadata, agent: Agent) -> None:
    try:
        services.mark_read(secret, agent)
    finally:
        close_old_connections()


# --- Per event loop: database connections, Vault connections, Vault access -------------


class _Connections:
    """This loop's idle PostgreSQL connections, at most ``DATABASE_POOL_SIZE`` kept, each with
    the one cursor its reads run on.

    Not psycopg_pool's async pool: its maintenance tasks are cancelled when ``asyncio.run``
    ends, before the pool can be closed, and its connections outlived the loop (a test database
    could not be dropped). A connection here is opened when none is idle, and closed when it
    comes back broken, in a transaction, or beyond the number kept. One cursor is kept per
    connection: a new one for each statement cost 35 µs of a read's CPU here.
    """

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.idle: list[psycopg.AsyncCursor[Any]] = []
        self.closing: set[asyncio.Future[None]] = set()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncCursor[Any]]:
        if self.idle:
            cursor = self.idle.pop()
        else:
            cursor = (await psycopg.AsyncConnection.connect(**self.params)).cursor()
        conn = cursor.connection
        try:
            yield cursor
        except BaseException as exc:
            if isinstance(exc, psycopg.Error) or conn.broken:
                await conn.close()
                raise
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await conn.close()  # cancelled mid-statement: not fit to be used again
                raise
            self._keep(cursor)
            raise
        self._keep(cursor)

    def _keep(self, cursor: psycopg.AsyncCursor[Any]) -> None:
        conn = cursor.connection
        idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        if idle and not conn.closed and len(self.idle) < settings.DATABASE_POOL_SIZE:
            self.idle.append(cursor)
        else:
            self.closing.add(asyncio.ensure_future(conn.close()))

    async def close(self) -> None:
        while self.idle:
            await self.idle.pop().connection.close()
        for closing in list(self.closing):
            with contextlib.suppress(BaseException):
                await closing


class _Resources:
    def __init__(self, connections: _Connections) -> None:
        self.pool = connections
        # At most DATABASE_POOL_SIZE reads at once hold a connection; more go to the threads.
        self.busy = asyncio.Semaphore(settings.DATABASE_POOL_SIZE)
        self.vault_idle: list[_VaultConnection] = []  # kept alive, to ``vault_at``'s address
        self.vault_at: _VaultEndpoint | None = None
        self.access_at = 0.0
        self.access_lock = asyncio.Lock()  # one refresh of the snapshot at a time
        self.vault_down_until = 0.0  # after a Vault error, the threads' path reads Vault
        # psycopg's ``prepare=``: True at once, None by its threshold, False never.
        self.prepare: bool | None = None

    def vault_trouble(self) -> None:
        """Vault failed in a way the next reads would meet too: for ``VAULT_DOWN_SECONDS``
        they go to the threads' path before writing anything (one row each, not two)."""
        self.vault_down_until = time.monotonic() + VAULT_DOWN_SECONDS

    def close_idle(self) -> None:
        while self.vault_idle:
            self.vault_idle.pop().close()

    async def close(self) -> None:
        self.close_idle()
        with contextlib.suppress(Exception):
            await self.pool.close()


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
        # The read's two statements are prepared at once, their plans kept (the look-up's
        # plan cost as much as its execution), unless the operator set ``prepare_threshold``
        # (psycopg's own rule then: None prepares nothing). A pooler that refuses them turns
        # preparing off (``_database_trouble``).
        operator_set = "prepare_threshold" in settings.DATABASES["default"].get("OPTIONS", {})
        if not operator_set:
            params.pop("prepare_threshold", None)  # Django's None would refuse prepare=True
        connections = _Connections({**params, "autocommit": True})
        resources = _Resources(connections)
        resources.prepare = None if operator_set else True
        keeper = _closed_with_the_loop(resources)
        await keeper.__anext__()
        held = _per_loop.setdefault(loop, (resources, keeper))
    return held[0]


async def _closed_with_the_loop(resources: _Resources) -> AsyncIterator[None]:
    """Held open for the loop's life: ``asyncio.run`` (Uvicorn's, a test's) closes a loop's
    async generators before the loop, and so the database and Vault connections with it."""
    try:
        yield
        await asyncio.Event().wait()  # pragma: no cover - never resumed
    finally:
        _per_loop.pop(asyncio.get_running_loop(), None)
        await resources.close()


class _VaultEndpoint:
    """What a direct read needs of the Vault client (``vault.access()``, taken in a worker
    thread): where Vault is, and the request's fixed head, its token in it."""

    def __init__(self, access: vault.Access, where: SplitResult) -> None:
        tls = _tls(access) if where.scheme == "https" else None
        self.host = where.hostname or ""
        self.port = where.port or (443 if tls else 80)
        self.tls = tls
        self.address = (self.host, self.port, tls)  # what a kept connection is bound to
        self.base_uri = access.base_uri
        headers = {"Host": where.netloc, **vault.request_headers(access.token, access.namespace)}
        self.head = "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode()
        self.requests: dict[tuple[str, int], bytes] = {}  # made once per name and version

    @classmethod
    def of(cls, access: vault.Access) -> _VaultEndpoint | None:
        """None where the threads' path must read: a proxy between the site and Vault, an
        address that is not plain HTTP(S), or header text that would not make one header."""
        where = urlsplit(access.base_uri)
        text = access.token + (access.namespace or "") + where.netloc + where.path
        if (
            not access.direct
            or where.scheme not in ("http", "https")
            or not where.hostname
            or where.username is not None
            or where.query
            or any(c in text for c in "\r\n\0 ")
            or not text.isascii()
        ):
            return None
        return cls(access, where)

    def request(self, secret: SecretMetadata, version: int) -> bytes:
        key = (secret.secret_name, version)
        request = self.requests.get(key)
        if request is None:
            target = vault.request_target(
                self.base_uri, vault.data_path(secret), {"version": str(version)}
            )
            request = b"GET " + target.encode("ascii") + b" HTTP/1.1\r\n" + self.head + b"\r\n"
            if len(self.requests) >= 4096:
                self.requests.clear()
            self.requests[key] = request
        return request


async def _vault_endpoint(resources: _Resources) -> _VaultEndpoint | None:
    """This loop's ``_VaultEndpoint``, refreshed every ``ACCESS_SECONDS`` (renewal and log-in
    stay with the threads' client); None while the threads' path must read."""
    if time.monotonic() < resources.vault_down_until:
        return None
    async with resources.access_lock:
        now = time.monotonic()
        if resources.vault_at is None or now - resources.access_at > ACCESS_SECONDS:
            access = await sync_to_async(vault.access, thread_sensitive=False)()
            fresh = _VaultEndpoint.of(access)
            old = resources.vault_at
            if fresh is None or old is None or fresh.address != old.address:
                resources.close_idle()  # kept connections go with the address, not the token
            resources.vault_at, resources.access_at = fresh, now
            if fresh is None:
                resources.vault_down_until = now + ACCESS_SECONDS  # not asked on every read
        return resources.vault_at


#: The largest answer from Vault the async read takes in (a secret's value is at most
#: SECRETS_MAX_VALUE_BYTES; its JSON envelope adds little); beyond, the threads' path reads.
MAX_VAULT_ANSWER = 4 * 1024 * 1024
#: Connections to Vault a loop keeps open between reads.
VAULT_KEPT = 16


class _VaultConnection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection to Vault, one request at a time, its answers parsed
    by httptools (the parser Uvicorn serves with).

    Why not aiohttp's client: this path makes one kind of request, a GET with fixed headers,
    and aiohttp's general machinery (its request and response objects, cookies, redirects,
    tracing) cost 0.28 ms of CPU a read here against 0.10 ms for this, and 0.77 ms of time in a
    tight loop against 0.55 ms (``docs/secrets.md``, "Speed"). Anything unusual (a status
    other than 200, an interim 1xx answer, bytes no request asked for, a parse error, a closed
    connection) fails the read, which the threads' path then makes with hvac; only a
    connection whose last answer was a clean, whole 200 is used again.
    """

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.size = 0
        self.heard = False  # any byte of the current answer
        self.keep_alive = False
        self.closed = False
        self.reused = False  # taken from the idle list, not opened for this read
        self.uses = 0  # requests sent

    # asyncio's side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.heard = True
        if self.answer is None or self.answer.done():
            self._failed(ConnectionError("Vault sent bytes no request asked for"))
            return
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # a parse error, an upgrade, a callback's refusal
            self._failed(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._failed(exc or ConnectionResetError("Vault closed the connection"))

    # httptools' side
    def on_message_begin(self) -> None:
        if self.answer is None or self.answer.done():
            raise ConnectionError("Vault sent an answer no request asked for")

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_VAULT_ANSWER:
            raise ValueError("Vault's answer is larger than the async read takes")
        self.body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # an interim answer: its final one would follow, unasked for
            raise ConnectionError(f"an interim answer ({status}) from Vault")
        if self.answer is not None and not self.answer.done():
            self.answer.set_result((status, b"".join(self.body)))

    # ours
    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    async def get(self, request: bytes) -> tuple[int, bytes]:
        if self.transport is None or not self.usable():
            raise ConnectionResetError("the connection to Vault is closed")
        self.body, self.size, self.heard, self.keep_alive = [], 0, False, False
        self.answer = asyncio.get_running_loop().create_future()
        self.uses += 1
        try:
            self.transport.write(request)
        except RuntimeError as exc:  # uvloop: written after the peer's EOF, before it is told
            raise ConnectionResetError("the connection to Vault is closed") from exc
        return await self.answer

    def _failed(self, exc: BaseException) -> None:
        self.close()
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


async def _vault_connection(
    resources: _Resources, at: _VaultEndpoint, kept: bool = True
) -> _VaultConnection:
    """A kept connection to Vault, else a new one (which may raise ``OSError`` or
    ``TimeoutError``)."""
    while kept and resources.vault_idle:
        idle = resources.vault_idle.pop()
        if idle.usable():
            idle.reused = True
            return idle
        idle.close()
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(settings.VAULT_TIMEOUT):
        _, opened = await loop.create_connection(
            _VaultConnection,
            at.host,
            at.port,
            ssl=at.tls,
            server_hostname=at.host if at.tls else None,
        )
    return opened


def _keep(resources: _Resources, at: _VaultEndpoint, conn: _VaultConnection) -> None:
    """Back in the idle list after a clean, whole 200, if Vault keeps it open and it still
    goes where Vault is; closed otherwise."""
    current = resources.vault_at
    if (
        conn.keep_alive
        and conn.usable()
        and current is not None
        and current.address == at.address
        and len(resources.vault_idle) < VAULT_KEPT
    ):
        resources.vault_idle.append(conn)
    else:
        conn.close()


async def _read_vault(
    resources: _Resources,
    at: _VaultEndpoint,
    conn: _VaultConnection,
    secret: SecretMetadata,
    version: int,
    again: bool = True,
) -> str | None:
    """The value of ``version`` from Vault over ``conn``, or None for anything but a clean
    answer. A 403 (the token replaced since the snapshot) is asked once more with a fresh
    snapshot, when its token differs."""
    request = at.request(secret, version)
    try:
        try:
            async with asyncio.timeout(settings.VAULT_TIMEOUT):
                status, raw = await conn.get(request)
        except (OSError, ConnectionError) as exc:
            if not conn.reused or conn.heard:
                raise
            # A kept connection Vault closed as the request went: once more, on a new one.
            logger.info("async read from Vault, again on a new connection: %s", exc)
            conn = await _vault_connection(resources, at, kept=False)
            async with asyncio.timeout(settings.VAULT_TIMEOUT):
                status, raw = await conn.get(request)
    except Exception as exc:  # transport, time-out, parse or size: Vault is not fit to ask
        conn.close()
        logger.info("async read from Vault: %s", type(exc).__name__)
        resources.vault_trouble()
        return None
    except BaseException:  # cancelled mid-answer: the connection is not fit to be used again
        conn.close()
        raise
    if status != 200:
        conn.close()
        if status == 403 and again:
            resources.access_at = -ACCESS_SECONDS  # the token replaced since? a fresh snapshot
            fresh = await _vault_endpoint(resources)
            if fresh is not None and fresh.head != at.head:
                try:
                    conn = await _vault_connection(resources, fresh)
                except (OSError, TimeoutError):
                    resources.vault_trouble()
                    return None
                return await _read_vault(resources, fresh, conn, secret, version, again=False)
        if status != 404:  # a redirect, a refusal, a limit, an error: not this secret's alone
            resources.vault_trouble()
        return None
    try:
        body = json.loads(raw)["data"]
        value, held = body["data"]["value"], body["metadata"]["version"]
    except (ValueError, TypeError, KeyError):
        value = held = None
    # Not the version asked for: never another's value (nor its connection used again).
    if held != version or not isinstance(value, str):
        conn.close()
        return None
    _keep(resources, at, conn)
    return value


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
