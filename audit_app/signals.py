"""Log-in, log-out and failed log-in are audited from the first request the site serves."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.http import HttpRequest

from audit_app import services


def on_login(sender: object, request: HttpRequest | None, user: object, **kwargs: Any) -> None:
    services.record("auth.login", user, resource="admin", action="login", request=request)


def on_logout(sender: object, request: HttpRequest | None, user: object, **kwargs: Any) -> None:
    services.record("auth.logout", user, resource="admin", action="logout", request=request)


def on_login_failed(
    sender: object,
    credentials: dict[str, Any],
    request: HttpRequest | None = None,
    **kwargs: Any,
) -> None:
    # Django has already masked the password in ``credentials``; only the user name is kept.
    from foundation_site import ratelimit

    username = str(credentials.get("username") or "")
    if request is not None:
        address = services.client_ip(request) or "-"
        locked = getattr(request, "_login_locked", None)
        if locked is not None:
            kind, key, _ = locked
            ratelimit.refused(kind, key)  # counted for the lock's summary row, not a row
            return
        # Each counts; beyond either limit the failure is counted for the summary row only.
        by_user = ratelimit.hit("login-user", username)
        by_address = ratelimit.hit("login-ip", address)
        if not (by_user.allowed and by_address.allowed):
            return
    services.record(
        "auth.login",
        username or "(blank)",
        resource="admin",
        action="login",
        success=False,
        request=request,
        error="invalid credentials",
    )


def connect() -> None:
    user_logged_in.connect(on_login, dispatch_uid="audit_login")
    user_logged_out.connect(on_logout, dispatch_uid="audit_logout")
    user_login_failed.connect(on_login_failed, dispatch_uid="audit_login_failed")
