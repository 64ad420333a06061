"""The admin's log-in, refused while a user name or an address is locked out."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from audit_app.services import client_ip
from foundation_site import ratelimit


class RateLimitedModelBackend(ModelBackend):
    """Django's own, except that a locked user name or address is refused before its password
    is checked (``PermissionDenied`` makes Django stop and report a failed log-in)."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if request is not None:
            for kind, key in (
                ("login-user", str(username or "")),
                ("login-ip", client_ip(request) or "-"),
            ):
                verdict = ratelimit.blocked(kind, key)
                if not verdict.allowed:
                    # Read by the failed log-in's audit (one count, no row) and the form.
                    request._login_locked = (kind, key, verdict.retry_after)  # type: ignore[attr-defined]
                    raise PermissionDenied
        return super().authenticate(request, username=username, password=password, **kwargs)
