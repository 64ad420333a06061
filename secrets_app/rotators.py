"""Rotators make a secret's next value. ``SECRETS_ROTATORS`` maps a provider to a dotted path;
"default" serves the others. A rotator that talks to a provider (a new database password, a new
API key) raises on failure, and the current version keeps serving."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from django.conf import settings
from django.utils.module_loading import import_string

from secrets_app.models import SecretMetadata

Rotator = Callable[[SecretMetadata], str]


def random_urlsafe(secret: SecretMetadata) -> str:
    """32 random bytes, URL-safe base64: right for shared secrets the foundation owns."""
    return secrets.token_urlsafe(32)


def get_rotator(provider: str | None) -> Rotator:
    registry = settings.SECRETS_ROTATORS
    path = registry.get(provider or "", registry["default"])
    rotator: Rotator = import_string(path)
    return rotator
