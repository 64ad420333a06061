"""The lean route for ``GET /api/v1/secrets/<name>`` in the served ASGI application.

Agents read secrets far more often than anything else is asked of the site. This route parses
the request with Django's own ``ASGIRequest`` and answers it on the event loop through
``secrets_app.reading.serve`` (the function the ninja view calls too), without Django's middleware
chain and URL resolution; every other request goes to ``fallback``.

Skipping the middleware is a decision per middleware, not by default: ``MIDDLEWARE_ACCOUNTED``
says what each of ``settings.MIDDLEWARE`` means for this route and how the route does it, and a
test fails when a middleware is added that it does not name.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest

from audit_app.services import client_ip
from foundation_client.protocol import SECRETS_API_PATH as PREFIX
from secrets_app import reading

ASGIApp = Any

#: What each middleware of ``settings.MIDDLEWARE`` does for an agent's read through this route.
MIDDLEWARE_ACCOUNTED = {
    "django.middleware.security.SecurityMiddleware": (
        "HTTPS: plain HTTP refused (403, not redirected: the token has crossed already) when "
        "SECURE_SSL_REDIRECT is on; its headers (HSTS, nosniff, Referrer-Policy) sent here"
    ),
    "whitenoise.middleware.WhiteNoiseMiddleware": "static files only: not this path",
    "django.contrib.sessions.middleware.SessionMiddleware": "agents carry no session",
    "django.middleware.common.CommonMiddleware": (
        "DISALLOWED_USER_AGENTS checked here; Content-Length sent; no slash or www redirects "
        "for an API path"
    ),
    "django.middleware.csrf.CsrfViewMiddleware": "a GET, with a bearer token: nothing to check",
    "django.contrib.auth.middleware.AuthenticationMiddleware": "the bearer token is the auth",
    "audit_app.middleware.AuditRequestMiddleware": (
        "the read's rows take the address and user agent from the request itself"
    ),
    "django.contrib.messages.middleware.MessageMiddleware": "no messages on an API answer",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": "X-Frame-Options sent here",
}


def _headers(
    request: ASGIRequest, answer: reading.Answer, length: int
) -> list[tuple[bytes, bytes]]:
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(length),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": settings.X_FRAME_OPTIONS,
        **answer.headers,
    }
    if settings.SECURE_REFERRER_POLICY:
        headers["Referrer-Policy"] = str(settings.SECURE_REFERRER_POLICY)
    if settings.SECURE_HSTS_SECONDS and request.is_secure():
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts += "; preload"
        headers["Strict-Transport-Security"] = hsts
    return [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]


async def _send(send: Any, request: ASGIRequest, answer: reading.Answer) -> None:
    payload = json.dumps(answer.body).encode()
    start = {
        "type": "http.response.start",
        "status": answer.status,
        "headers": _headers(request, answer, len(payload)),
    }
    await send(start)
    await send({"type": "http.response.body", "body": payload})


def _disallowed_agent(user_agent: str) -> bool:
    return any(re.search(pattern, user_agent) for pattern in settings.DISALLOWED_USER_AGENTS)


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
            await _send(send, request, reading.Answer(400, {"detail": "invalid Host header"}))
            return
        if settings.SECURE_SSL_REDIRECT and not request.is_secure():
            await _send(send, request, reading.Answer(403, {"detail": "HTTPS is required"}))
            return
        user_agent = request.META.get("HTTP_USER_AGENT")
        if settings.DISALLOWED_USER_AGENTS and _disallowed_agent(user_agent or ""):
            await _send(send, request, reading.Answer(403, {"detail": "Forbidden user agent"}))
            return
        asked = reading.ReadRequest(
            token=reading.bearer_token(request.META.get("HTTP_AUTHORIZATION", "")),
            name=path[len(PREFIX) :],  # ASGI paths arrive percent-decoded
            nonce=request.GET.get("nonce"),  # the last one when repeated, as ninja takes it
            ip_address=client_ip(request),
            user_agent=user_agent,
        )
        await _send(send, request, await reading.serve(asked, reading.database()))
