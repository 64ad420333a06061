"""The lean route for ``GET /api/v1/secrets/<name>`` in the served ASGI application.

Agents read secrets far more often than anything else is asked of the site. This route parses
the request itself, runs ``serve_read`` (the same function the ninja view runs) in one worker
thread, and answers JSON, without Django's middleware chain and URL resolution. A granted read
is answered on the event loop itself when it can be (``secrets_app.fast_read``). It checks the
Host header against ``ALLOWED_HOSTS`` as Django would, refuses plain HTTP when
``SECURE_SSL_REDIRECT`` is on, and passes every other request to ``fallback``.
"""

from __future__ import annotations

import io
import json
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections
from django.http import HttpRequest

from audit_app.services import client_ip
from foundation_client.protocol import SECRETS_API_PATH as PREFIX
from secrets_app import fast_read
from secrets_app.api import bearer_token, serve_read

ASGIApp = Any


def _serve(
    token: str | None, name: str, nonce: str | None, request: HttpRequest
) -> tuple[int, dict[str, Any]]:
    close_old_connections()  # as Django does around each request
    try:
        return serve_read(token, name, nonce, request)
    finally:
        close_old_connections()


async def _answer(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if status == 429:
        headers.append((b"retry-after", str(body["retry_after"]).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
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
        # Django's own request: its Host check (ALLOWED_HOSTS, DEBUG's local names), its HTTPS
        # check (SECURE_PROXY_SSL_HEADER), and the META the audit log reads.
        request = ASGIRequest(scope, io.BytesIO())
        try:
            request.get_host()
        except DisallowedHost:
            await _answer(send, 400, {"detail": "invalid Host header"})
            return
        if settings.SECURE_SSL_REDIRECT and not request.is_secure():
            # Django would redirect; the token has already crossed in clear, so refuse instead.
            await _answer(send, 403, {"detail": "HTTPS is required"})
            return
        name = path[len(PREFIX) :]  # ASGI paths arrive percent-decoded
        token = bearer_token(request.META.get("HTTP_AUTHORIZATION", ""))
        nonce = request.GET.get("nonce")  # the last one when repeated, as ninja takes it
        answer = None
        if fast_read.enabled():  # a granted read, on the event loop
            answer = await fast_read.serve(
                token, name, nonce, client_ip(request), request.META.get("HTTP_USER_AGENT")
            )
        if answer is None:  # anything else, refusals and failures included, in a thread
            answer = await sync_to_async(_serve, thread_sensitive=False)(
                token, name, nonce, request
            )
        await _answer(send, *answer)
