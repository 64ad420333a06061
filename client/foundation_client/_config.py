"""Client settings, read from ``FOUNDATION_*`` environment variables.

One small frozen object rather than long keyword lists; every field can also be given directly
(tests and embedded use). Malformed values fail at construction with the variable's name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from foundation_client._exceptions import ConfigurationError
from foundation_client.connections import REDIS_SCHEMES, redacted_url
from foundation_client.protocol import AGENT_NAME
from foundation_client.protocol.answers import load_site_public_key


def _secret(env: Mapping[str, str], name: str) -> str | None:
    direct, file_name = env.get(name), env.get(f"{name}_FILE")
    if direct and file_name:
        raise ConfigurationError(name, f"set {name} or {name}_FILE, not both")
    if file_name:
        try:
            value = Path(file_name).read_text().strip()
        except OSError as exc:
            raise ConfigurationError(
                f"{name}_FILE", f"cannot read {file_name!r}: {exc.strerror}"
            ) from None
        if not value:
            raise ConfigurationError(f"{name}_FILE", f"{file_name!r} is empty")
        return value
    return direct or None


def _url(name: str, value: str, schemes: frozenset[str]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or (parts.scheme != "unix" and not parts.hostname):
        raise ConfigurationError(
            name,
            f"must be a URL with scheme {', '.join(sorted(schemes))}, got {redacted_url(value)!r}",
        )
    return value


@dataclass(frozen=True)
class ClientSettings:
    """Where the foundation is and who this agent is."""

    agent_name: str
    api_url: str = "http://127.0.0.1:8000"
    redis_url: str = "redis://127.0.0.1:6379/0"
    agent_token: str | None = None
    #: URL-safe base64 X25519 private key; with it, the site seals secret values to this agent.
    private_key: str | None = None
    #: The site's Ed25519 public key (URL-safe base64; several, comma-separated, while the site's
    #: key is rotated). Pinned, every secret answer must be signed by it for this very request.
    site_public_key: str | None = None

    def __post_init__(self) -> None:
        if not AGENT_NAME.match(self.agent_name):
            raise ConfigurationError(
                "FOUNDATION_AGENT_NAME",
                "must be 1-63 characters of a-z, 0-9, '_' or '-', starting with a letter, "
                f"got {self.agent_name!r}",
            )
        _url("FOUNDATION_API_URL", self.api_url, frozenset({"http", "https"}))
        _url(
            "FOUNDATION_REDIS_URL",
            self.redis_url,
            REDIS_SCHEMES,
        )
        self.site_public_keys()  # malformed keys fail here, at construction

    def site_public_keys(self) -> tuple[Ed25519PublicKey, ...]:
        """The pinned site keys; empty when none is pinned."""
        texts = [part for part in (self.site_public_key or "").split(",") if part.strip()]
        try:
            return tuple(load_site_public_key(text) for text in texts)
        except ValueError:
            raise ConfigurationError(
                "FOUNDATION_SITE_PUBLIC_KEY",
                "must be the site's Ed25519 public key, 32 bytes in URL-safe base64 (several: "
                "comma-separated), as create_agent prints it",
            ) from None

    def __repr__(self) -> str:
        # The token is a credential: never in a repr, a log line or a traceback.
        token = "set" if self.agent_token else "unset"
        key = "set" if self.private_key else "unset"
        site_key = "pinned" if self.site_public_key else "unset"
        return (
            f"ClientSettings(agent_name={self.agent_name!r}, api_url={self.api_url!r}, "
            f"agent_token=<{token}>, private_key=<{key}>, site_public_key=<{site_key}>)"
        )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, agent_name: str | None = None
    ) -> ClientSettings:
        """Build settings from ``FOUNDATION_*`` variables (``os.environ`` by default)."""
        env = os.environ if env is None else env
        name = agent_name or env.get("FOUNDATION_AGENT_NAME")
        if not name:
            raise ConfigurationError("FOUNDATION_AGENT_NAME", "is not set")
        return cls(
            agent_name=name,
            api_url=env.get("FOUNDATION_API_URL") or cls.api_url,
            redis_url=env.get("FOUNDATION_REDIS_URL") or cls.redis_url,
            agent_token=_secret(env, "FOUNDATION_AGENT_TOKEN"),
            private_key=_secret(env, "FOUNDATION_AGENT_PRIVATE_KEY"),
            site_public_key=_secret(env, "FOUNDATION_SITE_PUBLIC_KEY"),
        )
