"""Log-in and log-out are audited from the first request the site serves (a failed log-in
beside the auth backend that locks out: ``foundation_site/auth_backends.py``)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.http import HttpRequest

from audit_app import services


def on_login(sender: object, request: HttpRequest | None, user: object, **kwargs: Any) -> None:
    services.record("auth.login", user, resource="admin", action="login", request=request)


def on_logout(sender: object, request: HttpRequest | None, user: object, **kwargs: Any) -> None:
    services.record("auth.logout", user, resource="admin", action="logout", request=request)


def connect() -> None:
    user_logged_in.connect(on_login, dispatch_uid="audit_login")
    user_logged_out.connect(on_logout, dispatch_uid="audit_logout")
