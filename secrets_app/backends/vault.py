"""The Vault / OpenBao backend: KV v2 under ``SECRETS_VAULT_MOUNT``/``SECRETS_VAULT_PREFIX``.

KV v2 numbers versions itself and keeps them. Writers are serialised by the site (a row lock on
the secret's metadata), and the site records the version Vault returns; no check-and-set, so a
version written to Vault whose database transaction then failed never blocks later writes.

Every hvac or transport error becomes ``BackendUnavailable`` (or ``SecretDoesNotExist``) with a
message that names the cause and never carries a value.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

import hvac
import hvac.exceptions
import requests
from django.conf import settings

from secrets_app.exceptions import BackendUnavailable, InvalidSecret, SecretDoesNotExist
from secrets_app.models import SecretMetadata, secret_name_segments

T = TypeVar("T")

_local = threading.local()


def _new_client() -> hvac.Client:
    client = hvac.Client(
        url=settings.VAULT_ADDR, token=settings.VAULT_TOKEN, timeout=settings.VAULT_TIMEOUT
    )
    if settings.VAULT_ROLE_ID:
        client.auth.approle.login(
            role_id=settings.VAULT_ROLE_ID, secret_id=settings.VAULT_SECRET_ID
        )
    return client


def client() -> hvac.Client:
    """One hvac client (and its keep-alive connection) per thread."""
    existing = getattr(_local, "client", None)
    wanted = (settings.VAULT_ADDR, settings.VAULT_TOKEN, settings.VAULT_ROLE_ID)
    if existing is None or getattr(_local, "config", None) != wanted:
        existing = _local.client = _new_client()
        _local.config = wanted
    return existing


def reset_client() -> None:
    _local.client = None


def path_for(secret: SecretMetadata) -> str:
    """The secret's path in Vault, from its name's validated segments only: a name that is not
    one (a row from before names were checked segment by segment) never reaches Vault, where
    ``..`` would name another secret."""
    segments = secret_name_segments(secret.secret_name)
    if segments is None:
        raise InvalidSecret(f"invalid secret name {secret.secret_name!r}")
    prefix = [part for part in settings.SECRETS_VAULT_PREFIX.split("/") if part]
    return "/".join([*prefix, *segments])


def _call(name: str, operation: Callable[[hvac.Client], T]) -> T:
    try:
        try:
            return operation(client())
        except hvac.exceptions.Forbidden:
            if not settings.VAULT_ROLE_ID:
                raise
            reset_client()  # an AppRole token may have expired: log in again, once
            return operation(client())
    except hvac.exceptions.InvalidPath:
        raise SecretDoesNotExist(name) from None
    except hvac.exceptions.InvalidRequest:
        raise BackendUnavailable(f"vault refused the request for {name!r}") from None
    except hvac.exceptions.Forbidden:
        raise BackendUnavailable(
            "vault denied the foundation's token (permission denied)"
        ) from None
    except hvac.exceptions.VaultDown:
        raise BackendUnavailable("vault is sealed or in maintenance") from None
    except hvac.exceptions.VaultError as exc:
        raise BackendUnavailable(f"vault answered with an error ({type(exc).__name__})") from None
    except requests.exceptions.Timeout:
        raise BackendUnavailable("vault did not answer in time") from None
    except requests.exceptions.RequestException as exc:
        reset_client()
        raise BackendUnavailable(f"vault is unreachable ({type(exc).__name__})") from None


class VaultBackend:
    name = "vault"

    def write(self, secret: SecretMetadata, value: str, expected_version: int | None) -> int:
        response = _call(
            secret.secret_name,
            lambda c: c.secrets.kv.v2.create_or_update_secret(
                path=path_for(secret),
                secret={"value": value},
                mount_point=settings.SECRETS_VAULT_MOUNT,
            ),
        )
        if expected_version is None:
            # KV v2 keeps 10 versions unless told otherwise; rollback needs the history.
            _call(
                secret.secret_name,
                lambda c: c.secrets.kv.v2.update_metadata(
                    path=path_for(secret),
                    max_versions=settings.SECRETS_VAULT_MAX_VERSIONS,
                    mount_point=settings.SECRETS_VAULT_MOUNT,
                ),
            )
        return int(response["data"]["version"])

    def read(self, secret: SecretMetadata, version: int) -> str:
        try:
            response = _call(
                secret.secret_name,
                lambda c: c.secrets.kv.v2.read_secret_version(
                    path=path_for(secret),
                    version=version,
                    raise_on_deleted_version=True,
                    mount_point=settings.SECRETS_VAULT_MOUNT,
                ),
            )
        except SecretDoesNotExist:
            raise SecretDoesNotExist(secret.secret_name, version) from None
        data = response["data"]["data"] or {}
        if not isinstance(data.get("value"), str):
            raise BackendUnavailable(f"vault holds no value for {secret.secret_name!r}")
        return str(data["value"])

    def destroy(self, secret: SecretMetadata) -> None:
        with contextlib.suppress(SecretDoesNotExist):  # already gone
            _call(
                secret.secret_name,
                lambda c: c.secrets.kv.v2.delete_metadata_and_all_versions(
                    path=path_for(secret), mount_point=settings.SECRETS_VAULT_MOUNT
                ),
            )
