"""An agent's read of a secret: the one path, however the request arrives.

``serve`` decides, reads, signs and audits every ``GET /api/v1/secrets/<name>``: the lean ASGI
route (``secrets_app.asgi``) and the ninja view (``secrets_app.api``, the OpenAPI document and
anything served by Django's own handlers) both call it, so a refusal rule lives in one place
(``decide``) and the audit row is written by one function (``_audit``).

The audit row says what happened: a success row is written only once the answer is made (the
value read, sealed and signed), and it is committed before the answer leaves; if it cannot be
written, the agent gets a 503 and no value.

Where the work runs is the ``Database`` the caller passes:

- ``Pooled``, in the served application: the look-up and the audit insert on psycopg's
  ``AsyncConnectionPool``, on the event loop, opened and closed by the ASGI lifespan
  (``start``/``stop``), with Vault's reader (``vault.read_async``, aiohttp); the local
  backend and the rate limits in worker threads;
- ``InThread``, everywhere else (the ninja view under Django's handlers and test client, SQLite,
  a server run without the lifespan): the same statements on Django's own connection.

Both run the same SQL (``grants.lookup_query``, ``CURRENT_QUERY``, the audit log's insert) with
the same adaptation; only the connection differs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection
from psycopg import sql as pg_sql
from psycopg_pool import AsyncConnectionPool

from agents_app.models import Agent, hash_token
from audit_app import services as audit
from foundation_client.protocol import (
    ANSWER_NONCE,
    ANSWER_NONCE_PATTERN,
    SecretAnswer,
    sealing_context,
)
from foundation_client.protocol.sealing import load_public_key, seal
from foundation_core import ratelimit, signing
from secrets_app import grants, services, value_cache
from secrets_app.backends import vault
from secrets_app.exceptions import (
    AccessDenied,
    BackendOutOfSync,
    BackendUnavailable,
    MasterKeyError,
    SecretDoesNotExist,
    SecretsError,
)
from secrets_app.models import CURRENT_QUERY, SecretMetadata, is_secret_name

logger = logging.getLogger("foundation.secrets.read")

T = TypeVar("T")


@dataclass(frozen=True)
class ReadRequest:
    """What a read is made of, however it arrived: the bearer token, the name (percent-decoded),
    ``?nonce=`` (None when absent), and the client's address and user agent for the audit row."""

    token: str | None
    name: str
    nonce: str | None
    ip_address: str | None
    user_agent: str | None


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        """Beyond the content type: ``Retry-After`` on a 429, and never cached anywhere."""
        headers = {"Cache-Control": "no-store"}
        if self.status == 429:
            headers["Retry-After"] = str(self.body["retry_after"])
        return headers


class Database(Protocol):
    """Where a read's statements and its blocking work run (``Pooled`` or ``InThread``)."""

    async def look_up(
        self, token_hash: str, name: str | None
    ) -> tuple[grants.Reader | None, SecretMetadata | None]: ...

    async def current(self, name: str) -> SecretMetadata | None: ...

    async def audit(self, values: tuple[Any, ...]) -> None: ...

    async def run(self, work: Callable[..., T], *args: Any) -> T: ...


# --- The decision ----------------------------------------------------------------------------


def decide(reader: grants.Reader, name: str, secret: SecretMetadata | None) -> int | SecretsError:
    """The version ``reader`` may have of ``name``, or why not. The grant comes before the
    secret's existence, so that an agent without one learns nothing of what exists."""
    if not reader.agent.is_active:
        return AccessDenied("agent is disabled")
    if not reader.may_read(name):
        return AccessDenied("no grant for this secret")
    if not is_secret_name(name):
        return SecretDoesNotExist("(invalid name)")
    if secret is None or secret.current_version is None:
        return SecretDoesNotExist(name)
    return secret.current_version


def _status(error: SecretsError, name: str) -> Answer:
    if isinstance(error, AccessDenied):
        return Answer(403, {"detail": error.reason})
    if isinstance(error, SecretDoesNotExist):
        return Answer(404, {"detail": f"secret {name!r} does not exist"})
    if isinstance(error, BackendOutOfSync):
        return Answer(
            503,
            {
                "detail": "the secret store no longer matches the site for this secret: an "
                "administrator must reconcile it"
            },
        )
    if isinstance(error, (BackendUnavailable, MasterKeyError)):
        logger.warning("secret %s unavailable: %s", services.audit_resource(name), error)
        return Answer(503, {"detail": "the secret store is unavailable"})
    logger.warning("secret %s: %s", services.audit_resource(name), type(error).__name__)
    return Answer(503, {"detail": "the secret store is unavailable"})


def _too_many(verdict: ratelimit.Verdict, detail: str) -> Answer:
    return Answer(429, {"detail": detail, "retry_after": verdict.retry_after})


def bearer_token(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class UnusableKey(Exception):
    """The agent's registered public key does not load: its value cannot be sealed to it."""


@functools.lru_cache(maxsize=1024)
def agent_key(public_key: str) -> bytes:
    """The agent's registered key, loaded once per key (every sealed read needs it)."""
    try:
        return load_public_key(public_key)
    except ValueError:
        raise UnusableKey from None


def signed_answer(agent: Agent, name: str, version: int, nonce: str, value: str) -> dict[str, Any]:
    """The answer's body: the value sealed to the agent's key when it has one, signed with the
    site's key over the request's nonce. The value's bytes, ours, are zeroed once sealed."""
    sealed: dict[str, str] | None = None
    if agent.public_key:
        key = agent_key(agent.public_key)
        plaintext = bytearray(value, "utf-8")
        try:
            sealed = seal(plaintext, key, sealing_context(name, version))
        finally:
            plaintext[:] = bytes(len(plaintext))
    answer = SecretAnswer(
        agent=agent.name,
        name=name,
        version=version,
        nonce=nonce,
        sealed=sealed,
        value=None if sealed is not None else value,
    )
    return signing.sign(answer).to_body()


# --- The read --------------------------------------------------------------------------------


async def serve(request: ReadRequest, db: Database) -> Answer:
    """Answer one read, audited: every refusal with its reason, a success only for a value that
    goes out (its row committed first)."""
    name = request.name
    reader, secret = await _authenticate(db, request.token, name)

    async def record(actor: object, success: bool, action: str = "read", **extra: Any) -> None:
        await _audit(db, request, actor, action, success, **extra)

    if reader is None:
        # Per address: beyond the limit, 429 and no row of its own (one summary row later).
        verdict = await db.run(ratelimit.hit, "api", request.ip_address or "-")
        if not verdict.allowed:
            return _too_many(verdict, "too many failed authentications from this address")
        await record(
            "(unknown agent)",
            False,
            error="invalid agent token" if request.token else "no agent token",
        )
        return Answer(401, {"detail": "Unauthorized"})
    agent = reader.agent
    if settings.RATELIMIT_AGENT_READS:
        verdict = await db.run(ratelimit.hit, "reads", agent.name)
        if not verdict.allowed:
            return _too_many(verdict, "this agent's read quota is used up")
    if request.nonce is not None and not ANSWER_NONCE.fullmatch(request.nonce):
        await record(agent, False, error="malformed nonce")
        return Answer(400, {"detail": f"nonce must match {ANSWER_NONCE_PATTERN}"})
    version = decide(reader, name, secret)
    if isinstance(version, SecretsError):
        await record(agent, False, error=version)
        return _status(version, name)
    assert secret is not None  # decide's: a version only for a row
    try:
        value = value_cache.get(secret.pk, version)
        if value is None:
            value = await _read_value(db, secret, version)
            value_cache.put(secret.pk, version, value)
    except SecretsError as exc:
        await record(agent, False, error=exc)
        return _status(exc, name)
    except Exception as exc:
        # Anything unforeseen (a malformed backend answer, a database hiccup) is still a read
        # that did not happen, and is audited as such: its type, never its message.
        await record(agent, False, error=f"internal error ({type(exc).__name__})")
        return _status(BackendUnavailable(type(exc).__name__), name)
    try:
        body = signed_answer(agent, name, version, request.nonce or "", value)
    except UnusableKey:
        await record(agent, False, "seal", error="the agent's public key is unusable")
        return Answer(503, {"detail": "the agent's public key is unusable"})
    finally:
        del value  # no reference of ours to the value outlives the answer
    try:
        await record(agent, True, version=version)
    except Exception as exc:
        logger.warning("a read of %s could not be audited: %s", name, type(exc).__name__)
        return Answer(503, {"detail": "the read could not be audited"})
    if services.mark_read_due(secret, agent):
        try:
            await db.run(services.mark_read, secret, agent)
        except Exception as exc:  # the admin list's columns; the audit row has the read
            logger.warning("could not mark %s read: %s", name, type(exc).__name__)
    return Answer(200, body)


async def _read_value(db: Database, secret: SecretMetadata, version: int) -> str:
    """From the secret's backend: Vault by its one reader, on this loop; the local backend's
    ciphertext from the database and its decryption, in a thread."""
    if secret.storage_backend == "vault":
        return await vault.read_async(secret, version)
    return await db.run(services.read_value, secret, version)


async def _authenticate(
    db: Database, token: str | None, name: str
) -> tuple[grants.Reader | None, SecretMetadata | None]:
    """The token's holder (a disabled agent too, so its refusals are audited under its name)
    and the name's current row, in one query unless the holder is in the token cache."""
    if not token:
        return None, None
    token_hash = hash_token(token)
    valid = is_secret_name(name)
    found, reader = grants.cached(token_hash)
    if found:
        if reader is None or not valid:
            return reader, None
        return reader, await db.current(name)
    since = grants.generation()
    reader, secret = await db.look_up(token_hash, name if valid else None)
    grants.remember(token_hash, reader, since)
    return reader, secret


async def _audit(
    db: Database,
    request: ReadRequest,
    actor: object,
    action: str,
    success: bool,
    **metadata: Any,
) -> None:
    """The read's audit row, the one ``audit_app.services.record`` writes for the same facts."""
    values = audit.row_values(
        "secrets.read",
        actor,
        services.audit_resource(request.name),
        action,
        success=success,
        user_agent=request.user_agent,
        ip_address=request.ip_address,
        **metadata,
    )
    await db.audit(values)


# --- Where it runs ---------------------------------------------------------------------------


class InThread:
    """Django's own connection, in the calling thread (``thread_sensitive``): the ninja view's
    database, its transaction (a test's) included; SQLite; a server run without the lifespan."""

    async def look_up(
        self, token_hash: str, name: str | None
    ) -> tuple[grants.Reader | None, SecretMetadata | None]:
        return await sync_to_async(grants.look_up)(token_hash, name)

    async def current(self, name: str) -> SecretMetadata | None:
        return await sync_to_async(SecretMetadata.current)(name)

    async def audit(self, values: tuple[Any, ...]) -> None:
        await sync_to_async(audit.write)(values)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        return await sync_to_async(work)(*args)


class Pooled:
    """psycopg's ``AsyncConnectionPool`` for the read's own statements (autocommit: the audit
    row is durable when its insert returns), worker threads for the rest."""

    def __init__(self, pool: AsyncConnectionPool[Any], prepare: bool | None) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()  # the pool's tasks and connections live on it
        self.prepare = prepare  # psycopg's ``prepare=``: True at once, None by its threshold

    async def _rows(self, query: str, params: list[Any]) -> list[Any]:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(query, params, prepare=self.prepare)
            rows: list[Any] = await cursor.fetchall()
            return rows

    async def look_up(
        self, token_hash: str, name: str | None
    ) -> tuple[grants.Reader | None, SecretMetadata | None]:
        query, params = grants.lookup_query(token_hash, name)
        return grants.from_lookup(await self._rows(query, params), name)

    async def current(self, name: str) -> SecretMetadata | None:
        rows = await self._rows(CURRENT_QUERY, [name])
        return SecretMetadata.from_current(name, rows[0] if rows else None)

    async def audit(self, values: tuple[Any, ...]) -> None:
        async with self.pool.connection() as conn:
            await audit.write_async(conn, values, prepare=self.prepare)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        # asyncio's own hand-off to the default executor: cheaper than asgiref's
        # (docs/measurements.md), and nothing of asgiref's is needed (no thread-sensitive
        # code, no context).
        return await asyncio.to_thread(_closing, work, *args)


def _closing(work: Callable[..., T], *args: Any) -> T:
    """Work in a worker thread, its Django connection given back after, as Django does around a
    request."""
    try:
        return work(*args)
    finally:
        close_old_connections()


# --- The pool's life: the ASGI lifespan ------------------------------------------------------

_pooled: Pooled | None = None
_warned = False


def pool_settings() -> tuple[dict[str, Any], bool | None]:
    """psycopg's connection arguments from Django's (its role, TLS and time-outs), and the
    ``prepare=`` the read's statements use: at once, unless the operator set
    ``prepare_threshold`` (None behind PgBouncer in transaction mode: psycopg prepares nothing)."""
    params = connection.get_connection_params()
    for key in ("cursor_factory", "context"):  # Django's sync classes
        params.pop(key, None)
    options = settings.DATABASES["default"].get("OPTIONS", {})
    if "prepare_threshold" in options:
        return {**params, "autocommit": True}, None
    params.pop("prepare_threshold", None)  # Django's None would refuse prepare=True
    return {**params, "autocommit": True}, True


async def start() -> None:
    """Open this process's pool (the lifespan's start): PostgreSQL only; on SQLite every read
    uses Django's connection. Connections are made in the background: a database that is down
    at start fails reads (503, audited when it returns), not the server's start."""
    global _pooled
    await vault.start_reader()
    if connection.vendor != "postgresql":
        return
    if _pooled is not None:
        if _pooled.loop is asyncio.get_running_loop():
            return
        _pooled = None  # left by a loop that ended without the lifespan's end: unusable
    params, prepare = pool_settings()
    role = settings.DATABASES["default"].get("OPTIONS", {}).get("assume_role")

    async def configure(conn: Any) -> None:
        if role:  # as Django sets it on its own connections
            await conn.execute(pg_sql.SQL("SET ROLE {}").format(pg_sql.Identifier(role)))

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        kwargs=params,
        min_size=1,
        max_size=settings.DATABASE_POOL_SIZE,
        timeout=settings.SECRETS_READ_DB_TIMEOUT,
        configure=configure,
        name="secrets-read",
        open=False,
    )
    await pool.open(wait=False)
    _pooled = Pooled(pool, prepare)


async def stop() -> None:
    """Close the pool (the lifespan's end), waiting for its connections to go."""
    global _pooled
    await vault.stop_reader()
    pooled, _pooled = _pooled, None
    if pooled is not None and pooled.loop is asyncio.get_running_loop():
        await pooled.pool.close()


def database() -> Database:
    """The served application's ``Pooled`` when the lifespan opened it, else ``InThread``."""
    global _warned
    if _pooled is not None and _pooled.loop is asyncio.get_running_loop():
        return _pooled
    if not _warned and connection.vendor == "postgresql":
        _warned = True
        logger.warning(
            "secret reads run on Django's connections in threads: serve with the ASGI "
            "lifespan on (uvicorn --lifespan on) for the event loop's pool"
        )
    return InThread()
