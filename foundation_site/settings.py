"""Settings for the Foundation site.

This is the only module that reads the environment. Every variable is parsed strictly: a value
that is present but malformed stops start-up with ``ImproperlyConfigured`` naming the variable,
because a typo in production must never silently fall back to a development default.

Secrets (``SECRET_KEY``, ``VAULT_TOKEN``, ``FOUNDATION_MASTER_KEY``,
``FOUNDATION_SITE_SIGNING_KEY``) may be given as ``NAME_FILE`` pointing at a file, so they need
not sit in the process environment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import environ
import structlog
from django.core.exceptions import ImproperlyConfigured

from foundation_client.connections import REDIS_SCHEMES, redacted_url

BASE_DIR = Path(__file__).resolve().parent.parent

# A developer's `.env` (written by `make run`) supplies defaults; real environment variables win.
# FOUNDATION_ENV_FILE points elsewhere, or at nothing ("") to read no file at all.
_env_file = os.environ.get("FOUNDATION_ENV_FILE", str(BASE_DIR / ".env"))
if _env_file and Path(_env_file).is_file():
    environ.Env.read_env(_env_file, overwrite=False)
# In a checkout, the addresses and credentials of the services `make run` started (Redis,
# OpenBao, PostgreSQL), so that `manage.py` from a plain shell sees what the running site sees.
_services_env = BASE_DIR / ".run" / "services.env"
if "FOUNDATION_ENV_FILE" not in os.environ and _services_env.is_file():
    environ.Env.read_env(str(_services_env), overwrite=False)

env = environ.Env()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool) -> bool:
    """Parse a boolean strictly: unlike ``Env.bool``, "ture" is an error, not False."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of true/false/1/0/yes/no/on/off, got {raw!r}")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_secret(name: str, *, required: bool, default: str | None = None) -> str | None:
    """Read ``NAME`` or the file named by ``NAME_FILE`` (not both)."""
    direct = os.environ.get(name)
    file_name = os.environ.get(f"{name}_FILE")
    if direct and file_name:
        raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both")
    if file_name:
        try:
            value = Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{name}_FILE={file_name!r} cannot be read: {exc.strerror}"
            ) from None
        if not value:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} is empty")
        return value
    if direct:
        return direct
    if required:
        raise ImproperlyConfigured(f"{name} (or {name}_FILE) must be set when DEBUG is off")
    return default


def env_url(name: str, default: str, schemes: set[str]) -> str:
    """A URL from the environment, checked; an error shows it without its user-info (the
    password), as every message here does."""
    raw = os.environ.get(name) or default
    shown = redacted_url(raw)
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - a non-numeric port raises here
    except ValueError:
        raise ImproperlyConfigured(f"{name} is not a valid URL: {shown!r}") from None
    if parts.scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        raise ImproperlyConfigured(f"{name} must be a URL with scheme {allowed}, got {shown!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ImproperlyConfigured(f"{name} must name a host, got {shown!r}")
    return raw


def key_32(raw: str | None, name: str) -> bytes | None:
    """A key of 32 random bytes in URL-safe base64 (``Fernet.generate_key()``): the master keys,
    the site's signing key."""
    if raw is None:
        return None
    try:
        key = base64.urlsafe_b64decode(raw.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        key = b""
    if len(key) != 32:
        raise ImproperlyConfigured(
            f"{name} must be 32 bytes in URL-safe base64 (44 characters); "
            'make one with: python -c "import base64,os;print(base64.urlsafe_b64encode('
            'os.urandom(32)).decode())"'
        )
    return key


DEBUG = env_bool("DEBUG", default=False)

SECRET_KEY: str = (
    env_secret(
        "SECRET_KEY",
        required=not DEBUG,
        default="django-insecure-development-only-key-never-use-in-production",
    )
    or ""
)
if not DEBUG and len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters when DEBUG is off")

try:
    ALLOWED_HOSTS: list[str] = env.list(
        "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
    )
except Exception as exc:  # django-environ raises several types for one bad value
    raise ImproperlyConfigured(f"ALLOWED_HOSTS is malformed: {exc}") from None
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off")

CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_rq",
    "ninja",
    "foundation_site",
    "audit_app",
    "agents_app",
    "secrets_app",
    "telemetry_app",
    "messaging_app",
    "config_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit_app.middleware.AuditRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "foundation_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "foundation_site.wsgi.application"
ASGI_APPLICATION = "foundation_site.asgi.application"
# Threads serving HTTP requests in each server process (see foundation_site/asgi.py).
HTTP_WORKER_THREADS = env_int("HTTP_WORKER_THREADS", 10, minimum=1)

# --- Database -------------------------------------------------------------------------------
_database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
_db_scheme = urlsplit(_database_url).scheme
if _db_scheme not in {"sqlite", "postgres", "postgresql", "pgsql", "psql"}:
    raise ImproperlyConfigured(
        f"DATABASE_URL must start with sqlite:// or postgres://, got scheme {_db_scheme!r}"
    )
try:
    _db: dict[str, Any] = env.db_url_config(_database_url)
except Exception as exc:
    # The parser's message may quote the URL, password included: its class only.
    raise ImproperlyConfigured(
        f"DATABASE_URL is malformed ({type(exc).__name__}): {redacted_url(_database_url)!r}"
    ) from None
# Connections a process may hold: Django's pool for the worker threads, and as many again for
# the agents' secret reads on the event loop (secrets_app.reading, opened by the ASGI lifespan).
DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 10, minimum=1)
# How long an agent's secret read waits for a connection of the read's own pool (seconds).
SECRETS_READ_DB_TIMEOUT = env_int("SECRETS_READ_DB_TIMEOUT", 5, minimum=1)
if _db["ENGINE"] == "django.db.backends.postgresql":
    # A psycopg connection pool: requests run in changing threads (foundation_site/asgi.py),
    # where Django's per-thread persistent connections would be opened anew each time, and
    # opening a PostgreSQL connection costs several milliseconds.
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_SIZE,
        "timeout": 10,
    }
    _db["CONN_MAX_AGE"] = 0
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server, the workers and the tests read while one of them writes.
    _db.setdefault("OPTIONS", {})["init_command"] = "PRAGMA journal_mode=WAL;"
    _db["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    _db["OPTIONS"]["timeout"] = 20
DATABASES = {"default": _db}

# The seed's tables use SERIAL keys.
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

# --- Redis, RQ, Channels --------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", "redis://127.0.0.1:6379/0", {"redis", "rediss", "unix"})

# Where agents talk (messaging, notices; later telemetry and shared state): the same Redis by
# default, or a Redis Cluster as redis+cluster://user:password@host:port. The site connects as its
# service user; each agent as its own ACL user, provisioned by the site.
AGENTS_REDIS_URL = env_url("AGENTS_REDIS_URL", REDIS_URL, set(REDIS_SCHEMES))
# The same Redis as agents reach it, without credentials (the agent's own go in): printed in the
# agent's environment by create_agent. By default AGENTS_REDIS_URL's scheme, host, port and db.
AGENTS_REDIS_PUBLIC_URL = env_url(
    "AGENTS_REDIS_PUBLIC_URL",
    urlunsplit(
        urlsplit(AGENTS_REDIS_URL)._replace(
            netloc=urlsplit(AGENTS_REDIS_URL).netloc.rpartition("@")[2]
        )
    ),
    set(REDIS_SCHEMES),
)
# The site's agent API as agents reach it: printed in the agent's environment by create_agent.
AGENTS_API_URL = env_url("AGENTS_API_URL", "http://127.0.0.1:8000", {"http", "https"})

RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600},
}
RQ_SHOW_ADMIN_LINK = True

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "foundation:channels"},
    },
}

# --- Vault / OpenBao and the local master key ------------------------------------------------
VAULT_ADDR = env_url("VAULT_ADDR", "http://127.0.0.1:8200", {"http", "https"})
VAULT_TOKEN = env_secret("VAULT_TOKEN", required=False)
FOUNDATION_MASTER_KEY = key_32(
    env_secret("FOUNDATION_MASTER_KEY", required=not DEBUG), "FOUNDATION_MASTER_KEY"
)
# During a master-key rotation: the keys values may still be wrapped with, comma-separated.
FOUNDATION_PREVIOUS_MASTER_KEYS: list[bytes] = [
    key
    for raw in (env_secret("FOUNDATION_PREVIOUS_MASTER_KEYS", required=False) or "").split(",")
    if raw.strip()
    for key in [key_32(raw.strip(), "FOUNDATION_PREVIOUS_MASTER_KEYS")]
    if key is not None
]
VAULT_TIMEOUT = env_int("VAULT_TIMEOUT", 5, minimum=1)
# The CA that signs Vault's certificate (a file, or a directory of them), as Vault's own CLI and
# hvac read them; otherwise requests' REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE, then certifi's.
VAULT_CACERT = os.environ.get("VAULT_CACERT") or None
VAULT_CAPATH = os.environ.get("VAULT_CAPATH") or None
for _name, _path in (("VAULT_CACERT", VAULT_CACERT), ("VAULT_CAPATH", VAULT_CAPATH)):
    if _path and not os.path.exists(_path):
        raise ImproperlyConfigured(f"{_name} names {_path!r}, which does not exist")
VAULT_ROLE_ID = os.environ.get("VAULT_ROLE_ID") or None
VAULT_SECRET_ID = env_secret("VAULT_SECRET_ID", required=False)
if VAULT_ROLE_ID and not VAULT_SECRET_ID:
    raise ImproperlyConfigured(
        "VAULT_SECRET_ID (or VAULT_SECRET_ID_FILE) must be set with VAULT_ROLE_ID"
    )

# --- Secrets --------------------------------------------------------------------------------
# The Ed25519 seed with which the site signs every secret answer; agents pin its public key
# (foundation_core.signing.site_public_key). In development without one, a key derived from
# SECRET_KEY, so that every process of one checkout (web, create_agent) agrees on it.
FOUNDATION_SITE_SIGNING_KEY: bytes = (
    key_32(
        env_secret("FOUNDATION_SITE_SIGNING_KEY", required=not DEBUG),
        "FOUNDATION_SITE_SIGNING_KEY",
    )
    or hashlib.sha256(b"foundation-development-site-signing-key:" + SECRET_KEY.encode()).digest()
)
SECRETS_DEFAULT_BACKEND = env.str("SECRETS_DEFAULT_BACKEND", default="vault")
if SECRETS_DEFAULT_BACKEND not in {"vault", "local"}:
    raise ImproperlyConfigured(
        f"SECRETS_DEFAULT_BACKEND must be vault or local, got {SECRETS_DEFAULT_BACKEND!r}"
    )
SECRETS_VAULT_MOUNT = env.str("SECRETS_VAULT_MOUNT", default="secret")
SECRETS_VAULT_PREFIX = env.str("SECRETS_VAULT_PREFIX", default="foundation")
# Versions KV v2 keeps per secret (its own default is 10); older ones cannot be rolled back to.
SECRETS_VAULT_MAX_VERSIONS = env_int("SECRETS_VAULT_MAX_VERSIONS", 100, minimum=1)
# Rotators by provider (dotted paths to callables taking the SecretMetadata, returning a value).
# Only these providers rotate; the others' due secrets get reminders (docs/secrets.md).
SECRETS_ROTATORS: dict[str, str] = {"internal": "secrets_app.rotators.random_urlsafe"}
SECRETS_ROTATION_CRON = env.str("SECRETS_ROTATION_CRON", default="*/15 * * * *")
# How long the site keeps a secret version's value in process memory (0: never).
SECRETS_SITE_CACHE_SECONDS = env_int("SECRETS_SITE_CACHE_SECONDS", 300)
# How long a process trusts a token lookup (agent and grants); 0: look up every request.
AGENT_AUTH_CACHE_SECONDS = env_int("AGENT_AUTH_CACHE_SECONDS", 5)

# --- Messaging ------------------------------------------------------------------------------
# How long the message log keeps its rows (messaging_app/retention.py), and when the purge runs.
MESSAGE_LOG_RETENTION_DAYS = env_int("MESSAGE_LOG_RETENTION_DAYS", 30, minimum=1)
MESSAGE_LOG_RETENTION_CRON = env.str("MESSAGE_LOG_RETENTION_CRON", default="* * * * *")

# --- Auth, i18n, static ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

LOGIN_URL = "admin:login"
# The admin's log-in refuses, without checking the password, a user name or an address locked
# by too many failures (foundation_core/ratelimit.py).
AUTHENTICATION_BACKENDS = ["foundation_site.auth_backends.RateLimitedModelBackend"]

# --- Rate limits (foundation_core/ratelimit.py; `limits` syntax: "20/minute", "5 per 15 minutes")
# Failed agent authentications per client address, then 429 and one summary audit row.
RATELIMIT_API_FAILURES = env.str("RATELIMIT_API_FAILURES", default="20/minute")
# Failed admin log-ins per user name, and per address, before the lock-out.
RATELIMIT_LOGIN_FAILURES = env.str("RATELIMIT_LOGIN_FAILURES", default="5 per 15 minutes")
RATELIMIT_LOGIN_ADDRESS_FAILURES = env.str(
    "RATELIMIT_LOGIN_ADDRESS_FAILURES", default="30 per 15 minutes"
)
# Successful secret reads per agent; empty: no quota (agents often share an address).
RATELIMIT_AGENT_READS = env.str("RATELIMIT_AGENT_READS", default="")
RATELIMIT_CRON = "* * * * *"  # writing the summary rows of windows that have passed

# --- Reverse proxy --------------------------------------------------------------------------
# Only behind a reverse proxy that sets X-Forwarded-For / -Proto may they be trusted: the audit
# log records the client address from them, and Django learns the request came over TLS.
BEHIND_PROXY = env_bool("BEHIND_PROXY", default=False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Production hardening (what `check --deploy` asks for) ----------------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}"
    )
# One JSON object a line (structlog's formatter over the standard library's loggers): a value
# that holds a newline or a quote stays inside its field, so no input can add a log line of its
# own, and log shippers read the fields without a parser of ours. ``extra=`` becomes fields.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "structlog.stdlib.ProcessorFormatter",
            "foreign_pre_chain": [
                structlog.stdlib.add_logger_name,
                structlog.stdlib.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.stdlib.ExtraAdder(),
            ],
            "processors": [
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(sort_keys=False, default=str),
            ],
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own console handler would print every django.* line a second time.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.db.backends": {"level": "WARNING"},
    },
}
