from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from secrets_app.models import SecretMetadata


class SecretBackend(Protocol):
    """What the services need of a backend. Errors: ``SecretDoesNotExist`` for a missing
    version, ``BackendUnavailable`` when the store cannot answer, with a message free of values."""

    name: str

    def write(self, secret: SecretMetadata, value: str, expected_version: int | None) -> int:
        """Store a new version and return its number. ``expected_version`` is the version the
        caller believes current (None for a new secret): a concurrent writer makes this fail."""

    def read(self, secret: SecretMetadata, version: int) -> str:
        """The value of one version."""

    def destroy(self, secret: SecretMetadata) -> None:
        """Remove every version."""
