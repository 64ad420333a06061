"""Secrets domain errors. Messages name the secret and the cause, never a value."""

from __future__ import annotations


class SecretsError(Exception):
    """Base of the secrets app's errors."""


class SecretDoesNotExist(SecretsError):
    def __init__(self, name: str, version: int | None = None) -> None:
        what = f"secret {name!r}" + (f" version {version}" if version is not None else "")
        super().__init__(f"{what} does not exist")
        self.name = name
        self.version = version


class BackendUnavailable(SecretsError):
    """The storage backend cannot answer now (Vault down, sealed, timing out, forbidden)."""


class AccessDenied(SecretsError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidSecret(SecretsError):
    """Bad input: an invalid name, an empty value, an unknown backend."""


class RotationFailed(SecretsError):
    pass


class MasterKeyError(SecretsError):
    """A local value is wrapped by a master key this process does not have."""
