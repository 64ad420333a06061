"""The lean route for ``GET /api/v1/secrets/<name>`` in the served ASGI application.

Agents read secrets far more often than anything else is asked of the site. This route parses
the request itself, runs ``serve_read`` (the same function the ninja view runs) in one worker
thread, and answers JSON, without Django's middleware chain and URL resolution. It checks the
Host header against ``ALLOWED_HOSTS`` as Django would, refuses plain HTTP when
``SECURE_SSL_REDIRECT`` is on, and passes every other request to ``fallback``.
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest
from django.http.request import split_domain_port, validate_host

from secrets_app.api import bearer_token, serve_read

PREFIX = "/api/v1/secrets/"
ASGIApp = Any


def _request(scope: dict[str, Any], headers: dict[bytes, bytes], path: str) -> HttpRequest:
    """A minimal HttpRequest: what the audit log reads (client address, user agent)."""
    request = HttpRequest()
    request.method = "GET"
    request.path = request.path_info = path
    client = scope.get("client") or ("", 0)
    request.META = {
        "REMOTE_ADDR": client[0],
        "HTTP_USER_AGENT": headers.get(b"user-agent", b"").decode("latin-1"),
    }
    forwarded = headers.get(b"x-forwarded-for")
    if forwarded is not None:
        request.META["HTTP_X_FORWARDED_FOR"] = forwarded.decode("latin-1")
    return request


def _is_secure(scope: dict[str, Any], headers: dict[bytes, bytes]) -> bool:
    if scope.get("scheme") == "https":
        return True
    if getattr(settings, "BEHIND_PROXY", False):
        return headers.get(b"x-forwarded-proto", b"").lower() == b"https"
    return False


def _serve(token: str | None, name: str, request: HttpRequest) -> tuple[int, dict[str, Any]]:
    close_old_connections()  # as Django does around each request
    try:
        return serve_read(token, name, request)
    finally:
        close_old_connections()


async def _answer(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class SecretsReadRoute:
    def __init__(self, fallback: ASGIApp) -> None:
        self.fallback = fallback

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope.get("method") != "GET"
            or not path.startswith(PREFIX)
            or len(path) == len(PREFIX)
        ):
            await self.fallback(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host, _ = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
        allowed = settings.ALLOWED_HOSTS
        if settings.DEBUG and not allowed:
            allowed = [".localhost", "127.0.0.1", "[::1]"]
        if not host or not validate_host(host, allowed):
            await _answer(send, 400, {"detail": "invalid Host header"})
            return
        if getattr(settings, "SECURE_SSL_REDIRECT", False) and not _is_secure(scope, headers):
            # Django would redirect; the token has already crossed in clear, so refuse instead.
            await _answer(send, 403, {"detail": "HTTPS is required"})
            return
        name = path[len(PREFIX) :]  # ASGI paths arrive percent-decoded
        token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
        status, body = await sync_to_async(_serve, thread_sensitive=False)(
            token, name, _request(scope, headers, path)
        )
        await _answer(send, status, body)
