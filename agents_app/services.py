"""Agent identities: creation, credentials (API token and Redis password), token checks, the
environment an agent is given."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest

from agents_app.models import Agent, SecretGrant, hash_token
from audit_app import services as audit
from foundation_core import notices
from secrets_app.models import NOT_LOOKED_UP, SecretLookup


@dataclass(frozen=True)
class Credentials:
    """What an agent needs, shown once: its API token and its Redis password (only their hashes
    are stored)."""

    token: str
    redis_password: str


def create_agent(
    name: str,
    *,
    actor: object,
    public_key: str = "",
    grants: Iterable[str] = (),
    description: str = "",
) -> tuple[Agent, Credentials]:
    """Create an agent with its Redis user; return it and its credentials (shown once)."""
    grants = list(grants)  # walked twice: validated and saved, then audited
    agent = Agent(name=name, public_key=public_key, description=description)
    credentials = Credentials(agent.set_new_token(), agent.set_new_redis_password())
    agent.full_clean()
    with transaction.atomic():
        agent.save()
        for pattern in grants:
            grant = SecretGrant(agent=agent, pattern=pattern)
            grant.full_clean(exclude=["agent"])
            grant.save()
    audit.record("agents.create", actor, f"agent:{name}", "create", grants=grants)
    return agent, credentials


def credential_history(agent: Agent, limit: int = 20) -> list[Any]:
    """The newest audit rows of what lets someone read this agent's secrets: its creation,
    credentials issued, public key and grant changes, refusals included."""
    from agents_app.audit_signals import EVENTS
    from audit_app.models import AuditLog

    return list(
        AuditLog.objects.filter(resource=f"agent:{agent.name}", event_type__in=EVENTS).order_by(
            "-id"
        )[:limit]
    )


def issue_credentials(
    agent: Agent, *, actor: object, request: HttpRequest | None = None
) -> Credentials:
    """New token and Redis password for ``agent``: the old ones stop working at once, open
    Redis connections included."""
    credentials = Credentials(agent.set_new_token(), agent.set_new_redis_password())
    # Read by the post_save provisioning: new credentials end the old connections.
    agent._disconnect = True  # type: ignore[attr-defined]
    agent.save(update_fields=["token_hash", "redis_password_hash"])
    forget_agents()
    audit.record(
        "agents.token",
        actor,
        f"agent:{agent.name}",
        "regenerate",
        request=request,
    )
    return credentials


def agent_environment(agent: Agent, credentials: Credentials) -> list[tuple[str, str]]:
    """The agent's whole environment, as ``KEY=VALUE`` pairs for its env file."""
    from agents_app.wire import redis_url_for
    from secrets_app.signing import site_public_key

    return [
        ("FOUNDATION_AGENT_NAME", agent.name),
        ("FOUNDATION_AGENT_TOKEN", credentials.token),
        ("FOUNDATION_API_URL", settings.AGENTS_API_URL),
        ("FOUNDATION_REDIS_URL", redis_url_for(agent, credentials.redis_password)),
        # The client refuses secret answers not signed by this key (forged, replayed).
        ("FOUNDATION_SITE_PUBLIC_KEY", site_public_key()),
    ]


_auth_cache: dict[str, tuple[Agent | None, float]] = {}
_auth_lock = threading.Lock()


_auth_generation = 0  # bumped by every forget_agents: a look-up begun before is not kept


def forget_agents() -> None:
    """Drop cached authentications (called whenever an agent or a grant changes)."""
    global _auth_generation
    with _auth_lock:
        _auth_cache.clear()
        _auth_generation += 1


def auth_generation() -> int:
    """Taken before a look-up and given to ``remember_agent``: a change that arrives while the
    look-up runs keeps its (perhaps revoked) agent out of the cache."""
    return _auth_generation


def authenticate(token: str | None) -> Agent | None:
    """The agent holding this token (with its grants loaded), or None. A disabled agent is
    returned too, so that its refused reads are audited under its name.

    Results are kept in this process for ``AGENT_AUTH_CACHE_SECONDS``; any change to an agent
    or a grant, in any site process, clears them at once (``foundation_core.notices``), and
    the TTL bounds what a missed notice could leave.
    """
    return authenticate_for_read(token, None)[0]


def authenticate_for_read(
    token: str | None, secret_name: str | None
) -> tuple[Agent | None, SecretLookup]:
    """``authenticate``, and with it ``secret_name``'s current row (``SecretMetadata.current``)
    in the same query when the token has to be read from the database: the agent API then makes
    one round trip before the secret store, not two. The row is ``NOT_LOOKED_UP`` when the agent
    came from the cache; it is never cached itself."""
    if not token:
        return None, NOT_LOOKED_UP
    token_hash = hash_token(token)
    found, agent = cached_agent(token_hash)
    if found:
        return agent, NOT_LOOKED_UP
    generation = auth_generation()
    agent, secret = Agent.for_token_and_secret(token_hash, secret_name)
    remember_agent(token_hash, agent, generation)
    return agent, secret if secret_name is not None else NOT_LOOKED_UP


def cached_agent(token_hash: str) -> tuple[bool, Agent | None]:
    """(True, the agent or None) when this token's look-up is in the cache, else (False, None)."""
    with _auth_lock:
        cached = _auth_cache.get(token_hash)
    if cached is not None and time.monotonic() < cached[1]:
        return True, cached[0]
    return False, None


def remember_agent(token_hash: str, agent: Agent | None, generation: int) -> None:
    """Keep a token's look-up for ``AGENT_AUTH_CACHE_SECONDS`` (0: not at all), unless agents
    changed since ``generation`` (``auth_generation()`` taken before the look-up)."""
    ttl = settings.AGENT_AUTH_CACHE_SECONDS
    if ttl <= 0 or not notices.started():  # kept only where other processes' changes arrive
        return
    with _auth_lock:
        if generation != _auth_generation:
            return
        if len(_auth_cache) > 10_000:
            _auth_cache.clear()
        _auth_cache[token_hash] = (agent, time.monotonic() + ttl)


def on_notice(message: dict[str, Any] | None) -> None:
    """What a notice makes the token cache forget (registered with
    ``foundation_core.notices``): everything, on any change to an agent or a grant."""
    if message is None or message.get("agents"):
        forget_agents()
