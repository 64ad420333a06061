"""Agent identities: creation, token checks, grants."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction

from agents_app.models import Agent, SecretGrant, hash_token
from audit_app import services as audit


def create_agent(
    name: str,
    *,
    actor: object,
    public_key: str = "",
    grants: Iterable[str] = (),
    description: str = "",
) -> tuple[Agent, str]:
    """Create an agent; return it and its token (shown once, stored only as a hash)."""
    grants = list(grants)  # walked twice: validated and saved, then audited
    agent = Agent(name=name, public_key=public_key, description=description)
    token = agent.set_new_token()
    agent.full_clean()
    with transaction.atomic():
        agent.save()
        for pattern in grants:
            grant = SecretGrant(agent=agent, pattern=pattern)
            grant.full_clean(exclude=["agent"])
            grant.save()
    audit.record("agents.create", actor, f"agent:{name}", "create", grants=grants)
    return agent, token


_auth_cache: dict[str, tuple[Agent | None, float]] = {}
_auth_lock = threading.Lock()


def forget_agents() -> None:
    """Drop cached authentications (called whenever an agent or a grant changes)."""
    with _auth_lock:
        _auth_cache.clear()


def authenticate(token: str | None) -> Agent | None:
    """The agent holding this token (with its grants loaded), or None. A disabled agent is
    returned too, so that its refused reads are audited under its name.

    Results are kept in this process for ``AGENT_AUTH_CACHE_SECONDS``: a change made in this
    process clears them at once, another process sees it within that many seconds.
    """
    if not token:
        return None
    token_hash = hash_token(token)
    now = time.monotonic()
    with _auth_lock:
        cached = _auth_cache.get(token_hash)
    if cached is not None and now < cached[1]:
        return cached[0]
    agent = Agent.objects.filter(token_hash=token_hash).prefetch_related("grants").first()
    ttl = settings.AGENT_AUTH_CACHE_SECONDS
    if ttl > 0:
        with _auth_lock:
            if len(_auth_cache) > 10_000:
                _auth_cache.clear()
            _auth_cache[token_hash] = (agent, now + ttl)
    return agent
