"""The Vault / OpenBao backend: KV v2 under ``SECRETS_VAULT_MOUNT``/``SECRETS_VAULT_PREFIX``.

KV v2 numbers versions itself and keeps them. Writers are serialised by the site (a row lock on
the secret's metadata), and the site records the version Vault returns; no check-and-set, so a
version written to Vault whose database transaction then failed never blocks later writes.

Every hvac or transport error becomes ``BackendUnavailable`` (or ``SecretDoesNotExist``) with a
message that names the cause and never carries a value.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import urlencode, urlsplit

import hvac
import hvac.exceptions
import hvac.utils
import requests
import requests.adapters
import requests.utils
import urllib3
import urllib3.exceptions
from django.conf import settings

from secrets_app.exceptions import (
    BackendOutOfSync,
    BackendUnavailable,
    InvalidSecret,
    SecretDoesNotExist,
)
from secrets_app.models import SecretMetadata, secret_name_segments

T = TypeVar("T")

logger = logging.getLogger("foundation.secrets.vault")

_local = threading.local()
#: A token is renewed (or, for AppRole, logged in again) once this share of its life is left:
#: renewed before it expires, never on a request that already failed (finding 10 of the review).
_RENEW_WHEN_LEFT = 1 / 3


def _session() -> tuple[requests.Session, str | bool]:
    """A session that reads the environment's proxies and CA bundle once, here, and returns it
    with the ``verify`` hvac should use.

    requests reads them again on every call (``trust_env``), walking ``os.environ`` for the
    proxy variables twice: 0.35 ms a call here, a third of a whole Vault read. Precedence is
    kept: ``VAULT_CACERT``, then ``VAULT_CAPATH`` (as hvac reads them), then requests' own
    ``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE``; proxies as requests would pick them for
    ``VAULT_ADDR``, ``NO_PROXY`` included.
    """
    session = requests.Session()
    environment = session.merge_environment_settings(settings.VAULT_ADDR, {}, None, None, None)
    session.trust_env = False
    session.proxies = environment["proxies"]
    verify = settings.VAULT_CACERT or settings.VAULT_CAPATH or environment["verify"]
    # hvac takes a session's own verify over the one it is given: set it on both.
    session.verify = verify
    return session, verify


def _new_client() -> hvac.Client:
    session, verify = _session()
    client = hvac.Client(
        url=settings.VAULT_ADDR,
        token=settings.VAULT_TOKEN,
        timeout=settings.VAULT_TIMEOUT,
        session=session,
        verify=verify,
    )
    if settings.VAULT_ROLE_ID:
        client.auth.approle.login(
            role_id=settings.VAULT_ROLE_ID, secret_id=settings.VAULT_SECRET_ID
        )
    return client


def client() -> hvac.Client:
    """One hvac client (and its keep-alive connection) per thread, its token kept alive."""
    existing = getattr(_local, "client", None)
    wanted = (settings.VAULT_ADDR, settings.VAULT_TOKEN, settings.VAULT_ROLE_ID)
    if existing is None or getattr(_local, "config", None) != wanted:
        existing = _local.client = _new_client()
        _local.config = wanted
        _local.expires, _local.lifetime, _local.renewable = _lifetime(existing)
    elif _local.expires is not None and (
        time.monotonic() >= _local.expires - _local.lifetime * _RENEW_WHEN_LEFT
    ):
        existing = _keep_alive(existing)
    return existing


def _lifetime(vault: hvac.Client) -> tuple[float | None, float, bool]:
    """When the client's token expires (monotonic time; None: never, or not known), its whole
    TTL, and whether it is renewable. Unknown if Vault cannot say: the call will tell why."""
    try:
        data = vault.auth.token.lookup_self()["data"]
    except (hvac.exceptions.VaultError, requests.exceptions.RequestException):
        return None, 0.0, False
    ttl = float(data.get("ttl") or 0)
    if ttl <= 0:  # a token that never expires (a root token)
        return None, 0.0, False
    return (
        time.monotonic() + ttl,
        float(data.get("creation_ttl") or ttl),
        bool(data.get("renewable")),
    )


def _keep_alive(vault: hvac.Client) -> hvac.Client:
    """Renew the token for another whole TTL; where Vault will not (not renewable, or at its
    maximum TTL), log in again with AppRole, or say the token is about to expire."""
    left = max(0.0, _local.expires - time.monotonic())
    if _local.renewable:
        try:
            auth = vault.auth.token.renew_self(increment=f"{int(_local.lifetime)}s")["auth"]
        except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as exc:
            logger.warning("could not renew the vault token: %s", type(exc).__name__)
        else:
            granted = float(auth.get("lease_duration") or 0)
            if granted > left:
                _local.expires = time.monotonic() + granted
                logger.info("renewed the vault token for %ds", granted)
                return vault
    if settings.VAULT_ROLE_ID:
        reset_client()
        logger.info("logging in to vault again (AppRole): the token expires in %ds", left)
        return client()
    logger.warning(
        "the vault token expires in %ds and cannot be renewed: give the site a new VAULT_TOKEN",
        left,
    )
    _local.expires = None  # said once; the calls will fail when it has expired
    return vault


def reset_client() -> None:
    _local.client = None
    _local.pool = _local.pool_for = None


@dataclass(frozen=True)
class Access:
    """How the async read (``secrets_app.fast_read``) may call Vault: this thread's client's
    address, token and TLS settings, or ``direct=False`` when a proxy stands in the way."""

    base_uri: str
    token: str = field(repr=False)
    namespace: str | None
    verify: str | bool
    cert: str | tuple[str, str] | None
    direct: bool


def access() -> Access:
    """A snapshot of a live client (its token renewed, or logged in again, as ``client()`` does);
    called from a worker thread, since it may have to ask Vault."""
    return _access_of(client())


def _access_of(vault: hvac.Client) -> Access:
    """``vault``'s address, token and TLS settings (hvac keeps them in its adapter's keyword
    arguments), and whether a proxy stands in the way: the one place they are read."""
    adapter = vault.adapter
    proxy = requests.utils.select_proxy(adapter.base_uri, adapter.session.proxies)
    return Access(
        base_uri=adapter.base_uri,
        token=adapter.token or "",
        namespace=adapter.namespace,
        verify=adapter._kwargs.get("verify", True),
        cert=adapter._kwargs.get("cert"),
        direct=not proxy,
    )


def request_headers(token: str, namespace: str | None) -> dict[str, str]:
    """The headers hvac sends with each request, for the reads that go around it."""
    headers = {"X-Vault-Request": "true", "X-Vault-Token": token}
    if namespace:
        headers["X-Vault-Namespace"] = namespace
    return headers


def request_target(base_uri: str, api_path: str, params: dict[str, str]) -> str:
    """An API path as hvac asks for it: after the path of the address (``VAULT_ADDR``) itself."""
    base = urlsplit(base_uri).path.rstrip("/")
    return f"{base}{api_path}?{urlencode(params)}" if params else f"{base}{api_path}"


def data_path(secret: SecretMetadata) -> str:
    """The KV v2 API path of a secret's data."""
    return str(
        hvac.utils.format_url(
            "/v1/{mount}/data/{path}", mount=settings.SECRETS_VAULT_MOUNT, path=path_for(secret)
        )
    )


def _read_pool(vault: hvac.Client) -> urllib3.HTTPConnectionPool | None:
    """The connection pool requests itself sends this client's calls through (its TLS
    settings included), or None when a proxy stands between the site and Vault."""
    found = _access_of(vault)
    adapter = vault.adapter.session.get_adapter(found.base_uri)
    if not found.direct or not isinstance(adapter, requests.adapters.HTTPAdapter):
        return None
    request = requests.Request("GET", found.base_uri).prepare()
    pool = adapter.get_connection_with_tls_context(
        request, found.verify, proxies={}, cert=found.cert
    )
    adapter.cert_verify(pool, found.base_uri, found.verify, found.cert)
    return pool


def _get(vault: hvac.Client, api_path: str, params: dict[str, str]) -> dict[str, Any]:
    """``GET`` a Vault API path straight on requests' own connection pool, or through hvac
    when a proxy is in the way or Vault redirects (a standby); hvac's exceptions either way.

    Every uncached read of a secret's value comes here, and requests' work around a call
    (hooks, cookies, redirects, its response object) cost 0.25 ms of a 1 ms read.
    """
    pool: urllib3.HTTPConnectionPool | None
    if getattr(_local, "pool_for", None) is vault:
        pool = _local.pool
    else:
        pool = _local.pool = _read_pool(vault)
        _local.pool_for = vault
    if pool is None:
        answer = vault.adapter.get(url=api_path, params=params)
        return cast("dict[str, Any]", answer)
    url = request_target(vault.adapter.base_uri, api_path, params)
    response = pool.urlopen(
        "GET",
        url,
        headers=request_headers(vault.adapter.token or "", vault.adapter.namespace),
        redirect=False,
        assert_same_host=False,
        retries=False,
        timeout=urllib3.Timeout(connect=settings.VAULT_TIMEOUT, read=settings.VAULT_TIMEOUT),
    )
    if 300 <= response.status < 400:  # a standby's redirect: hvac follows it, as before
        return cast("dict[str, Any]", vault.adapter.get(url=api_path, params=params))
    body: Any = None
    with contextlib.suppress(ValueError):
        body = json.loads(response.data) if response.data else None
    if response.status == 200 and isinstance(body, dict):
        return body
    errors = body.get("errors") if isinstance(body, dict) else None
    text = response.data.decode("utf-8", "replace")
    raise hvac.exceptions.VaultError.from_status(
        response.status,
        None if errors is not None else text,
        errors=errors,
        method="get",
        url=url,
        text=text,
        json=body,
    )


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
    except urllib3.exceptions.NewConnectionError:  # a TimeoutError to urllib3, for history
        reset_client()
        raise BackendUnavailable("vault is unreachable (NewConnectionError)") from None
    except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError):
        raise BackendUnavailable("vault did not answer in time") from None
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
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
        version = int(response["data"]["version"])
        if expected_version is not None and version <= expected_version:
            raise BackendOutOfSync(
                secret.secret_name,
                f"vault numbered the new value version {version}, the site's current is "
                f"version {expected_version}",
            )
        return version

    def current_version(self, secret: SecretMetadata) -> int | None:
        """Vault's own current version of the secret (None: Vault holds none of it)."""
        try:
            response = _call(
                secret.secret_name,
                lambda c: c.secrets.kv.v2.read_secret_metadata(
                    path=path_for(secret), mount_point=settings.SECRETS_VAULT_MOUNT
                ),
            )
        except SecretDoesNotExist:
            return None
        return int(response["data"]["current_version"]) or None

    def read(self, secret: SecretMetadata, version: int) -> str:
        try:
            # hvac's read_secret_version(raise_on_deleted_version=True), by the faster path.
            api_path = data_path(secret)
            response = _call(
                secret.secret_name, lambda c: _get(c, api_path, {"version": str(version)})
            )
        except SecretDoesNotExist:
            expected = secret.current_version is not None and version <= secret.current_version
            held = self.current_version(secret) if expected else None
            if expected and (held is None or held < version):
                # A version the site recorded, which Vault says it never had: it lost data.
                what = "no version" if held is None else f"versions up to {held}"
                raise BackendOutOfSync(
                    secret.secret_name, f"vault holds {what}, the site expects version {version}"
                ) from None
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
