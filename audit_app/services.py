"""The one way to write to the audit log.

Every app calls :func:`record`. It normalises the actor (a user, an agent or a plain name), takes
the client address and user agent from the request, escapes control characters and trims values
to the seed's column widths (whatever a client sent, the row is written and cannot forge another),
and redacts metadata keys that look like they hold a secret: the audit log must never become the
place a secret leaks to.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Mapping
from typing import Any, cast

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field
from django.http import HttpRequest

from audit_app.models import AuditLog

logger = logging.getLogger("foundation.audit")

REDACTED = "[redacted]"
_SENSITIVE_KEY = re.compile(
    r"(^|_)(value|password|passwd|secret|token|plaintext|private_key|api_key|credential)s?($|_)",
    re.IGNORECASE,
)
_USER_AGENT_MAX = 1000
_ERROR_MAX = 2000


def actor_name(actor: object) -> str | None:
    """A user's username, an agent's name, or the string itself."""
    if actor is None:
        return None
    get_username = getattr(actor, "get_username", None)
    if callable(get_username):
        return str(get_username()) or None
    name = getattr(actor, "name", None)
    if isinstance(name, str):
        return name
    return str(actor)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address; X-Forwarded-For counts only behind a trusted proxy.

    Behind one proxy the right-most X-Forwarded-For entry is the one that proxy appended, so it is
    the only one a client cannot forge.
    """
    candidate: str | None = request.META.get("REMOTE_ADDR")
    if getattr(settings, "BEHIND_PROXY", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            candidate = hops[-1]
    if not candidate:
        return None
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def redact(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Replace the value of any key that names a secret, at any depth."""
    clean: dict[str, Any] = {}
    for key, value in metadata.items():
        if _SENSITIVE_KEY.search(str(key)):
            clean[str(key)] = REDACTED
        elif isinstance(value, Mapping):
            clean[str(key)] = redact(value)
        else:
            clean[str(key)] = value
    return clean


#: What no audit text keeps as it is: C0 and C1 control characters (NUL, newline, escape...),
#: DEL, the Unicode line and paragraph separators, and the backslash that escapes them.
#: PostgreSQL refuses a NUL (the row, and so the audit of a probe, was lost); the others let
#: input forge lines and terminal output.
_CONTROL = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029]")
_METADATA_TEXT_MAX = 1000


def _escape(match: re.Match[str]) -> str:
    """A backslash doubled (so that an escape in the input cannot pass for one of ours), any
    other character as ``\\xNN`` or ``\\uNNNN``."""
    if match.group() == "\\":
        return "\\\\"
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(value: object, width: int) -> str | None:
    """``value`` as audit text: control characters escaped (``\\x0a``), then cut to ``width``
    (the cut marked with an ellipsis). The same on every database vendor."""
    if value is None:
        return None
    text = _CONTROL.sub(_escape, value if isinstance(value, str) else str(value))
    return text if len(text) <= width else text[: width - 1] + "…"


def _safe_metadata(value: Any) -> Any:
    """Every string of the metadata, keys included, made safe the same way."""
    if isinstance(value, str):
        return safe_text(value, _METADATA_TEXT_MAX)
    if isinstance(value, Mapping):
        return {safe_text(k, 100): _safe_metadata(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe_metadata(v) for v in value]
    return value


#: The columns ``record`` writes, in the order it passes them; ``id`` and ``created_at`` are the
#: database's (``created_at`` defaults to the transaction's time).
_COLUMNS = (
    "event_type",
    "actor",
    "resource",
    "action",
    "ip_address",
    "user_agent",
    "success",
    "error_message",
    "metadata",
)


@functools.cache
def _insert_sql() -> str:
    quote = connection.ops.quote_name  # both vendors quote names alike
    return (
        f"INSERT INTO {quote(AuditLog._meta.db_table)} "  # noqa: S608  # nosec B608
        f"({', '.join(quote(name) for name in _COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(_COLUMNS))}) RETURNING {quote('id')}"
    )


@functools.cache
def _fields() -> list[Field[Any, Any]]:
    return [cast("Field[Any, Any]", AuditLog._meta.get_field(name)) for name in _COLUMNS]


def _params(values: tuple[Any, ...], adapting: BaseDatabaseWrapper | None = None) -> list[Any]:
    """The row's values adapted by the model's own fields, as the ORM's insert adapts them."""
    conn = adapting or connection
    return [f.get_db_prep_save(v, conn) for f, v in zip(_fields(), values, strict=True)]


@functools.cache
def _adapting() -> BaseDatabaseWrapper:
    """A connection object for the async insert's adaptation only, never connected: on the
    event loop, Django's ``connection`` is a new object for each request's task."""
    return connections.create_connection(DEFAULT_DB_ALIAS)


def _entry(pk: int, values: tuple[Any, ...]) -> AuditLog:
    """The row written, as a model instance; ``created_at`` (the database's) is deferred."""
    # from_db takes the loaded values in the model's field order; what is missing is deferred.
    loaded = dict(zip(_COLUMNS, values, strict=True), id=pk)
    names = [f.attname for f in AuditLog._meta.concrete_fields if f.attname in loaded]
    return AuditLog.from_db(connection.alias, names, [loaded[name] for name in names])


def _insert(values: tuple[Any, ...]) -> AuditLog:
    """One ``INSERT ... RETURNING id``, the values adapted by the model's own fields.

    By hand rather than ``objects.create``: every agent read writes a row, and the ORM's
    compilation of the insert cost as much as the database's durable commit of it
    (docs/measurements.md).
    The row is the same; its ``created_at`` is loaded from the database when first read.
    """
    if not connection.features.can_return_columns_from_insert:  # pragma: no cover - old SQLite
        return AuditLog.objects.create(**dict(zip(_COLUMNS, values, strict=True)))
    # As the ORM's save does: inside atomic(), a failed insert marks the transaction for
    # rollback, so that a caller that catches the error cannot commit without its audit row.
    with transaction.mark_for_rollback_on_error(), connection.cursor() as cursor:
        cursor.execute(_insert_sql(), _params(values))
        row = cursor.fetchone()
    return _entry(row[0], values)


def write(values: tuple[Any, ...]) -> AuditLog:
    """Append one row of ``row_values`` on Django's connection, and log it: ``record``'s
    writer, and the agent read's where it runs on Django's connection."""
    entry = _insert(values)
    _log(values)
    return entry


async def write_async(conn: Any, values: tuple[Any, ...], prepare: bool | None = None) -> int:
    """``write`` on a psycopg ``AsyncConnection`` in autocommit (the agent read's pool): the
    same statement, adaptation and log line; the row's id is returned."""
    cursor = await conn.execute(_insert_sql(), _params(values, _adapting()), prepare=prepare)
    row = await cursor.fetchone()
    _log(values)
    return int(row[0])


def row_values(
    event_type: str,
    actor: object,
    resource: str | None = None,
    action: str | None = None,
    *,
    success: bool | None = True,
    user_agent: str | None = None,
    error: str | BaseException | None = None,
    ip_address: str | None = None,
    **metadata: Any,
) -> tuple[Any, ...]:
    """An audit row's column values (``_COLUMNS``), every text made safe: ``record``'s, and the
    async read's."""
    if not event_type or len(event_type) > 50:
        raise ValueError("event_type must be 1 to 50 characters")
    if isinstance(error, BaseException):
        error = f"{type(error).__name__}: {error}"
    return (
        safe_text(event_type, 50) or event_type,
        safe_text(actor_name(actor), 100),
        safe_text(resource, 200),
        safe_text(action, 50),
        ip_address,
        safe_text(user_agent, _USER_AGENT_MAX),
        success,
        safe_text(error, _ERROR_MAX),
        _safe_metadata(redact(metadata)) if metadata else None,
    )


def _log(values: tuple[Any, ...]) -> None:
    """The row's log line (``values`` in ``_COLUMNS``' order): one structured record
    (settings.LOGGING renders JSON), fields, never text to extend."""
    if not logger.isEnabledFor(logging.INFO):
        return
    event_type, actor, resource, action, ip_address, _, success = values[:7]
    logger.info(
        "audit",
        extra={
            "audit_event": event_type,
            "action": action,
            "actor": actor,
            "resource": resource,
            "success": success,
            "ip": ip_address,
        },
    )


def record(
    event_type: str,
    actor: object,
    resource: str | None = None,
    action: str | None = None,
    *,
    success: bool | None = True,
    request: HttpRequest | None = None,
    error: str | BaseException | None = None,
    ip_address: str | None = None,
    **metadata: Any,
) -> AuditLog:
    """Append one row to the audit log and return it.

    ``event_type`` names the subsystem and kind of event (``auth.login``, ``secrets.read``,
    ``admin.change``); ``action`` the verb. A failure to write propagates: an action that cannot
    be audited should not pass silently.
    """
    user_agent = None
    if request is not None:
        ip_address = client_ip(request)
        user_agent = request.META.get("HTTP_USER_AGENT")
    values = row_values(
        event_type,
        actor,
        resource,
        action,
        success=success,
        user_agent=user_agent,
        error=error,
        ip_address=ip_address,
        **metadata,
    )
    return write(values)


def record_for_request(event_type: str, resource: str, action: str, **metadata: Any) -> AuditLog:
    """``record`` where no request is passed down (model signals): the request being served
    (``AuditRequestMiddleware``) gives the actor, its signed-in user, and the address; outside
    one, the actor is ``(system)``."""
    from audit_app.middleware import current_request

    request = current_request()
    user = getattr(request, "user", None)
    actor: object = user if user is not None and user.is_authenticated else "(system)"
    return record(event_type, actor, resource, action, request=request, **metadata)


def record_rate_limited(
    kind: str,
    event_type: str,
    actor: object,
    resource: str,
    count: int,
    ip_address: str | None = None,
) -> AuditLog:
    """The one row for ``count`` attempts a rate limit refused (``foundation_core.ratelimit``
    keeps no row per refusal): written by the limit's owner, with its own event."""
    from foundation_core import ratelimit

    return record(
        event_type,
        actor,
        resource,
        "rate_limited",
        success=False,
        error=f"{count} more attempts refused by the rate limit ({kind})",
        ip_address=ip_address,
        suppressed=count,
        limit=getattr(settings, ratelimit.KINDS[kind]),
    )
