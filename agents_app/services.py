"""Agent identities: creation, token checks, grants."""

from __future__ import annotations

from collections.abc import Iterable

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
    agent = Agent(name=name, public_key=public_key, description=description)
    token = agent.set_new_token()
    agent.full_clean()
    with transaction.atomic():
        agent.save()
        for pattern in grants:
            grant = SecretGrant(agent=agent, pattern=pattern)
            grant.full_clean(exclude=["agent"])
            grant.save()
    audit.record("agents.create", actor, f"agent:{name}", "create", grants=list(grants))
    return agent, token


def authenticate(token: str | None) -> Agent | None:
    """The active agent holding this token, or None."""
    if not token:
        return None
    agent = Agent.objects.filter(token_hash=hash_token(token)).prefetch_related("grants").first()
    if agent is None or not agent.is_active:
        return None
    return agent
