"""Where secret values live. Both backends keep every version; the site's ``SecretVersion`` rows
say who made each one."""

from __future__ import annotations

from secrets_app.backends.base import SecretBackend
from secrets_app.exceptions import InvalidSecret


def get_backend(name: str | None) -> SecretBackend:
    from secrets_app.backends.local import LocalBackend
    from secrets_app.backends.vault import VaultBackend

    if name == "vault":
        return VaultBackend()
    if name == "local":
        return LocalBackend()
    raise InvalidSecret(f"unknown storage backend {name!r} (vault or local)")


__all__ = ["SecretBackend", "get_backend"]
