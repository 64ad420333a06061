"""Rotators make a secret's next value. ``SECRETS_ROTATORS`` maps a provider to a dotted path.

Only a provider with a registered rotator rotates: the built-in random one is registered for
``internal`` (passwords the foundation owns), and is no fallback, since a random string in place
of a provider's API key destroys the real credential. A rotator that talks to a provider (a new
database password, a new API key) raises on failure, and the current version keeps serving;
docs/secrets.md says how to write one that keeps two credentials live during the switch."""

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


#: The provider of secrets the foundation owns, which the random rotator serves.
INTERNAL = "internal"


def get_rotator(provider: str | None) -> Rotator | None:
    """The provider's rotator, or None: then the secret is never rotated, only reminded of."""
    path = settings.SECRETS_ROTATORS.get(provider or "")
    if path is None:
        return None
    rotator: Rotator = import_string(path)
    return rotator
