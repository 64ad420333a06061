"""The admin's log-in, refused while a user name or an address is locked out: the backend, the
counting of failures (each one a row until its limit, then one summary row per window), and
those summaries."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from audit_app import services as audit
from foundation_core import ratelimit


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
                ("login-ip", audit.client_ip(request) or "-"),
            ):
                verdict = ratelimit.blocked(kind, key)
                if not verdict.allowed:
                    # Read by the failed log-in's audit (one count, no row) and the form.
                    request._login_locked = (kind, key, verdict.retry_after)  # type: ignore[attr-defined]
                    raise PermissionDenied
        return super().authenticate(request, username=username, password=password, **kwargs)


def on_login_failed(
    sender: object,
    credentials: dict[str, Any],
    request: HttpRequest | None = None,
    **kwargs: Any,
) -> None:
    # Django has already masked the password in ``credentials``; only the user name is kept.
    username = str(credentials.get("username") or "")
    if request is not None:
        address = audit.client_ip(request) or "-"
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
    audit.record(
        "auth.login",
        username or "(blank)",
        resource="admin",
        action="login",
        success=False,
        request=request,
        error="invalid credentials",
    )


def _user_refused(username: str, count: int) -> None:
    audit.record_rate_limited("login-user", "auth.login", username, "admin", count)


def _address_refused(address: str, count: int) -> None:
    audit.record_rate_limited("login-ip", "auth.login", "(any user)", "admin", count, address)


def connect() -> None:
    """From the site's ``ready``: failed log-ins counted and audited, their summaries owned."""
    from django.contrib.auth.signals import user_login_failed

    user_login_failed.connect(on_login_failed, dispatch_uid="audit_login_failed")
    ratelimit.on_refused("login-user", _user_refused)
    ratelimit.on_refused("login-ip", _address_refused)
