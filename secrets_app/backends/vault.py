"""The Vault / OpenBao backend: KV v2 under ``SECRETS_VAULT_MOUNT``/``SECRETS_VAULT_PREFIX``.

KV v2 numbers versions itself and keeps them. Writers are serialised by the site (a row lock on
the secret's metadata), and the site records the version Vault returns; no check-and-set, so a
version written to Vault whose database transaction then failed never blocks later writes.

Writes, metadata, token renewal and AppRole log-in go through hvac; values are read by one
reader, ``read_async`` (aiohttp on the running event loop), from the agent API and from sync
code alike. Both take TLS and proxies from ``route()``, and every error of either becomes
``BackendUnavailable`` (or ``SecretDoesNotExist``) by ``classified``, with a message that names
the cause and never carries a value.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import certifi
import hvac
import hvac.exceptions
import hvac.utils
import requests
import requests.utils
import urllib3
import urllib3.exceptions
from django.conf import settings

from secrets_app.exceptions import (
    BackendOutOfSync,
    BackendUnavailable,
    InvalidSecret,
    SecretDoesNotExist,
    SecretsError,
)
from secrets_app.models import SecretMetadata, secret_name_segments

T = TypeVar("T")

logger = logging.getLogger("foundation.secrets.vault")

_local = threading.local()
#: A token is renewed (or, for AppRole, logged in again) once this share of its life is left:
#: renewed before it expires, never on a request that already failed (finding 10 of the review).
_RENEW_WHEN_LEFT = 1 / 3
#: The clock token lifetimes are kept on (tests move it instead of waiting).
clock = time.monotonic


@dataclass(frozen=True)
class Route:
    """How to reach Vault, for hvac's session and the async reader alike: ``verify`` as requests
    takes it (a CA file or directory, True for certifi's bundle, False for none) and the proxy
    for ``VAULT_ADDR`` (None: direct)."""

    proxies: dict[str, str]
    verify: str | bool

    @property
    def proxy(self) -> str | None:
        return requests.utils.select_proxy(settings.VAULT_ADDR, self.proxies) or None


def route() -> Route:
    """The environment's proxies and CA bundle, read once per client: requests reads them again
    on every call (``trust_env``), walking ``os.environ`` twice (docs/measurements.md). Precedence
    as hvac and requests have it: ``VAULT_CACERT``, ``VAULT_CAPATH``, then requests' own
    ``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE``; proxies as requests would pick them for
    ``VAULT_ADDR``, ``NO_PROXY`` included."""
    environment = requests.Session().merge_environment_settings(
        settings.VAULT_ADDR, {}, None, None, None
    )
    verify = settings.VAULT_CACERT or settings.VAULT_CAPATH or environment["verify"]
    return Route(proxies=dict(environment["proxies"]), verify=verify)


def ssl_context(verify: str | bool) -> ssl.SSLContext:
    """``verify`` as an SSL context, checking as requests checks: a CA file or directory, else
    certifi's bundle (requests' default); none when told not to (``VAULT_SKIP_VERIFY``)."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    where = verify if isinstance(verify, str) else certifi.where()
    if os.path.isdir(where):
        return ssl.create_default_context(capath=where)
    return ssl.create_default_context(cafile=where)


def _session() -> tuple[requests.Session, str | bool]:
    """hvac's session, on ``route()``: the environment read once."""
    found = route()
    session = requests.Session()
    session.trust_env = False
    session.proxies = found.proxies
    # hvac takes a session's own verify over the one it is given: set it on both.
    session.verify = found.verify
    return session, found.verify


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
        clock() >= _local.expires - _local.lifetime * _RENEW_WHEN_LEFT
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
        clock() + ttl,
        float(data.get("creation_ttl") or ttl),
        bool(data.get("renewable")),
    )


def _keep_alive(vault: hvac.Client) -> hvac.Client:
    """Renew the token for another whole TTL; where Vault will not (not renewable, or at its
    maximum TTL), log in again with AppRole, or say the token is about to expire."""
    left = max(0.0, _local.expires - clock())
    if _local.renewable:
        try:
            auth = vault.auth.token.renew_self(increment=f"{int(_local.lifetime)}s")["auth"]
        except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as exc:
            logger.warning("could not renew the vault token: %s", type(exc).__name__)
        else:
            granted = float(auth.get("lease_duration") or 0)
            if granted > left:
                _local.expires = clock() + granted
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
    except Exception as exc:
        error = classified(name, exc)
        if error is exc:
            raise
        raise error from None


def classified(name: str, exc: Exception) -> Exception:
    """What a failed call to Vault means for ``name``, whichever client made it: hvac's
    exceptions (``VaultError.from_status`` makes them from a status too), requests' and
    urllib3's, aiohttp's; the message names the cause, never a value. Anything else is
    returned as it is."""
    if isinstance(exc, hvac.exceptions.InvalidPath):
        return SecretDoesNotExist(name)
    if isinstance(exc, hvac.exceptions.InvalidRequest):
        return BackendUnavailable(f"vault refused the request for {name!r}")
    if isinstance(exc, hvac.exceptions.Forbidden):
        return BackendUnavailable("vault denied the foundation's token (permission denied)")
    if isinstance(exc, hvac.exceptions.VaultDown):
        return BackendUnavailable("vault is sealed or in maintenance")
    if isinstance(exc, hvac.exceptions.VaultError):
        return BackendUnavailable(f"vault answered with an error ({type(exc).__name__})")
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # a TimeoutError to urllib3
        reset_client()
        return BackendUnavailable("vault is unreachable (NewConnectionError)")
    if isinstance(
        exc, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)
    ):
        return BackendUnavailable("vault did not answer in time")
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return BackendUnavailable("vault is unreachable (SSLError)")
    transport = (
        requests.exceptions.RequestException,
        urllib3.exceptions.HTTPError,
        aiohttp.ClientError,
        OSError,
    )
    if isinstance(exc, transport):
        if not isinstance(exc, aiohttp.ClientError):
            reset_client()
        return BackendUnavailable(f"vault is unreachable ({type(exc).__name__})")
    return exc  # ours already (SecretsError), or unforeseen: raised as it is


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
        """A version's value, by the one reader (``read_async``), from sync code (a rollback, a
        command, the admin). On a loop of its own; in a thread of its own when this thread
        already runs one (Playwright's, a notebook's), where ``asyncio.run`` cannot start."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(read_async(secret, version))
        with concurrent.futures.ThreadPoolExecutor(1) as one:
            return one.submit(asyncio.run, read_async(secret, version)).result()

    def missing(self, secret: SecretMetadata, version: int) -> SecretsError:
        """What a 404 for ``version`` means: the version does not exist, or, for one the site
        recorded, that Vault lost data (``BackendOutOfSync``)."""
        expected = secret.current_version is not None and version <= secret.current_version
        held = self.current_version(secret) if expected else None
        if expected and (held is None or held < version):
            what = "no version" if held is None else f"versions up to {held}"
            return BackendOutOfSync(
                secret.secret_name, f"vault holds {what}, the site expects version {version}"
            )
        return SecretDoesNotExist(secret.secret_name, version)

    def destroy(self, secret: SecretMetadata) -> None:
        with contextlib.suppress(SecretDoesNotExist):  # already gone
            _call(
                secret.secret_name,
                lambda c: c.secrets.kv.v2.delete_metadata_and_all_versions(
                    path=path_for(secret), mount_point=settings.SECRETS_VAULT_MOUNT
                ),
            )


# --- Reading a value: the one reader, aiohttp on the running event loop -----------------------

#: The largest answer taken in: far beyond a secret value and KV's JSON around it.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
#: How long the reader uses a token taken from this process's hvac client before it asks again
#: (renewal and AppRole log-in stay with hvac, in a thread).
TOKEN_SECONDS = 10.0


#: The one thread that hands the reader its token: its hvac client (``client()`` is one per
#: thread) is the one that renews the token, or logs in again, for the readers of this process.
_token_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="vault-token")


def _current_token() -> str:
    return client().token or ""


async def _in_token_thread(work: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(_token_thread, work)


class Reader:
    """Reads secret values from KV v2 with one aiohttp session on the running loop: one
    connector (kept-alive connections, ``route()``'s TLS and proxy), no cookie jar, no
    decompression, a capped read, the time-out hvac has. Errors are hvac's, made from the status
    (``VaultError.from_status``), and mean what they mean for hvac's calls (``classified``)."""

    def __init__(self) -> None:
        found = route()
        self.proxy = found.proxy
        self.loop = asyncio.get_running_loop()
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_context(found.verify)),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=settings.VAULT_TIMEOUT),
        )
        self.token = ""
        self.token_at = -TOKEN_SECONDS
        self.token_lock = asyncio.Lock()

    async def _token(self, fresh: bool = False) -> str:
        async with self.token_lock:
            if fresh or time.monotonic() - self.token_at > TOKEN_SECONDS:
                self.token = await _in_token_thread(_current_token)
                self.token_at = time.monotonic()
            return self.token

    async def _get(self, url: str, version: int, token: str) -> tuple[int, bytes]:
        headers = {"X-Vault-Request": "true", "X-Vault-Token": token}
        async with self.session.get(
            url, params={"version": str(version)}, headers=headers, proxy=self.proxy
        ) as response:
            body = await response.content.read(MAX_ANSWER_BYTES + 1)
            if len(body) > MAX_ANSWER_BYTES:
                raise BackendUnavailable("vault's answer is larger than the site takes")
            return response.status, body

    async def read(self, secret: SecretMetadata, version: int) -> str:
        name = secret.secret_name
        url = settings.VAULT_ADDR.rstrip("/") + str(
            hvac.utils.format_url(
                "/v1/{mount}/data/{path}", mount=settings.SECRETS_VAULT_MOUNT, path=path_for(secret)
            )
        )
        try:
            used = await self._token()
            status, raw = await self._get(url, version, used)
            if status == 403:
                # The token replaced since it was taken, or an AppRole token expired (then log
                # in again, as ``_call`` does): asked once more with a fresh one.
                if settings.VAULT_ROLE_ID:
                    await _in_token_thread(reset_client)
                fresh = await self._token(fresh=True)
                if fresh != used or settings.VAULT_ROLE_ID:
                    status, raw = await self._get(url, version, fresh)
        except Exception as exc:
            error = classified(name, exc)
            if error is exc:
                raise
            raise error from None
        try:
            answer: Any = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        if status != 200:
            errors = answer.get("errors") if isinstance(answer, dict) else None
            error = hvac.exceptions.VaultError.from_status(
                status, None, errors=errors, method="get", url=url
            )
            if isinstance(error, hvac.exceptions.InvalidPath):
                raise await asyncio.to_thread(VaultBackend().missing, secret, version)
            raise classified(name, error)
        try:
            data, held = answer["data"]["data"] or {}, answer["data"]["metadata"]["version"]
        except (TypeError, KeyError):
            raise BackendUnavailable(f"vault's answer for {name!r} is not KV v2's") from None
        if held != version:  # never another version's value
            raise BackendUnavailable(f"vault answered another version of {name!r}")
        if not isinstance(data.get("value"), str):
            raise BackendUnavailable(f"vault holds no value for {name!r}")
        return str(data["value"])

    async def close(self) -> None:
        await self.session.close()


_reader: Reader | None = None


async def start_reader() -> None:
    """This process's reader on the running loop (the ASGI lifespan's start)."""
    global _reader
    if _reader is None or _reader.loop is not asyncio.get_running_loop():
        _reader = Reader()


async def stop_reader() -> None:
    global _reader
    reader, _reader = _reader, None
    if reader is not None and reader.loop is asyncio.get_running_loop():
        await reader.close()


async def read_async(secret: SecretMetadata, version: int) -> str:
    """A version's value from Vault: the lifespan's reader when it runs on this loop, else a
    reader made for this read (Django's handlers, commands, tests)."""
    if _reader is not None and _reader.loop is asyncio.get_running_loop():
        return await _reader.read(secret, version)
    reader = Reader()
    try:
        return await reader.read(secret, version)
    finally:
        await reader.close()
