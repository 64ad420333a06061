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


class BackendOutOfSync(BackendUnavailable):
    """The backend's versions of a secret no longer match the site's metadata (a Vault restored
    from an older snapshot, or one that lost its data): said as such, never as a 500 or as "does
    not exist"; ``manage.py reconcile_vault`` brings the two together."""

    def __init__(self, name: str, detail: str) -> None:
        self.name = name
        super().__init__(
            f"the secret store and the site disagree on {name!r}: {detail}; "
            "an administrator must run manage.py reconcile_vault"
        )


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
