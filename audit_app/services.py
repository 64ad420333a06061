"""The one way to write to the audit log.

Every app calls :func:`record`. It normalises the actor (a user, an agent or a plain name), takes
the client address and user agent from the request, trims values to the seed's column widths, and
redacts metadata keys that look like they hold a secret: the audit log must never become the
place a secret leaks to.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
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


def _clip(value: str | None, width: int) -> str | None:
    if value is None:
        return None
    return value if len(value) <= width else value[: width - 1] + "…"


def record(
    event_type: str,
    actor: object,
    resource: str | None = None,
    action: str | None = None,
    success: bool | None = True,
    request: HttpRequest | None = None,
    error: str | BaseException | None = None,
    **metadata: Any,
) -> AuditLog:
    """Append one row to the audit log and return it.

    ``event_type`` names the subsystem and kind of event (``auth.login``, ``secrets.read``,
    ``admin.change``); ``action`` the verb. A failure to write propagates: an action that cannot
    be audited should not pass silently.
    """
    if not event_type or len(event_type) > 50:
        raise ValueError("event_type must be 1 to 50 characters")
    if isinstance(error, BaseException):
        error = f"{type(error).__name__}: {error}"
    ip_address = user_agent = None
    if request is not None:
        ip_address = client_ip(request)
        user_agent = _clip(request.META.get("HTTP_USER_AGENT"), _USER_AGENT_MAX)
    entry = AuditLog.objects.create(
        event_type=event_type,
        actor=_clip(actor_name(actor), 100),
        resource=_clip(resource, 200),
        action=_clip(action, 50),
        ip_address=ip_address,
        user_agent=user_agent,
        success=success,
        error_message=_clip(error, _ERROR_MAX),
        metadata=redact(metadata) if metadata else None,
    )
    logger.info(
        "audit event=%s action=%s actor=%s resource=%s success=%s ip=%s",
        entry.event_type,
        entry.action,
        entry.actor,
        entry.resource,
        entry.success,
        entry.ip_address,
    )
    return entry
