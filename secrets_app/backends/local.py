"""The local backend: envelope-encrypted values in ``secrets_local_values``."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction

from secrets_app.crypto import Keyring, Sealed
from secrets_app.exceptions import BackendUnavailable, InvalidSecret, SecretDoesNotExist
from secrets_app.models import LocalSecretValue, SecretMetadata


def keyring() -> Keyring:
    if not settings.FOUNDATION_MASTER_KEY:
        raise BackendUnavailable("the local backend needs FOUNDATION_MASTER_KEY")
    return Keyring(settings.FOUNDATION_MASTER_KEY, settings.FOUNDATION_PREVIOUS_MASTER_KEYS)


def aad(secret: SecretMetadata, version: int) -> bytes:
    return f"{secret.pk}:{secret.secret_name}:{version}".encode()


def _sealed(row: LocalSecretValue) -> Sealed:
    return Sealed(
        bytes(row.nonce),
        bytes(row.ciphertext),
        bytes(row.wrapped_key),
        bytes(row.key_nonce),
        row.key_id,
    )


class LocalBackend:
    name = "local"

    def write(self, secret: SecretMetadata, value: str, expected_version: int | None) -> int:
        ring = keyring()
        # The caller holds the metadata row locked, and values commit with it: the next version
        # follows ``expected_version``. The unique (secret, version) still guards the rest.
        with transaction.atomic():
            version = (expected_version or 0) + 1
            sealed = ring.encrypt(value.encode("utf-8"), aad(secret, version))
            try:
                LocalSecretValue.objects.create(
                    secret=secret,
                    version=version,
                    nonce=sealed.nonce,
                    ciphertext=sealed.ciphertext,
                    wrapped_key=sealed.wrapped_key,
                    key_nonce=sealed.key_nonce,
                    key_id=sealed.key_id,
                )
            except IntegrityError:
                raise InvalidSecret(
                    f"secret {secret.secret_name!r} changed meanwhile; retry"
                ) from None
        return version

    def read(self, secret: SecretMetadata, version: int) -> str:
        row = LocalSecretValue.objects.filter(secret=secret, version=version).first()
        if row is None:
            raise SecretDoesNotExist(secret.secret_name, version)
        return keyring().decrypt(_sealed(row), aad(secret, version)).decode("utf-8")

    def destroy(self, secret: SecretMetadata) -> None:
        LocalSecretValue.objects.filter(secret=secret).delete()


def rewrap_all(batch_size: int = 500) -> tuple[int, int]:
    """Re-wrap every data key not yet under the current master key; return (done, total).

    Row by row in short transactions, so readers are never blocked for long and an interruption
    can simply be resumed: rows already re-wrapped are skipped.
    """
    ring = keyring()
    total = LocalSecretValue.objects.count()
    done = 0
    while True:
        with transaction.atomic():
            rows = list(
                LocalSecretValue.objects.select_for_update()
                .select_related("secret")
                .exclude(key_id=ring.current_id)
                .order_by("pk")[:batch_size]
            )
            for row in rows:
                fresh = ring.rewrap(_sealed(row), aad(row.secret, row.version))
                LocalSecretValue.objects.filter(pk=row.pk).update(
                    wrapped_key=fresh.wrapped_key, key_nonce=fresh.key_nonce, key_id=fresh.key_id
                )
        done += len(rows)
        if len(rows) < batch_size:
            return done, total
