"""Agent identities: creation, credentials (API token and Redis password), token checks, the
environment an agent is given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest

from agents_app.audit_signals import EVENTS
from agents_app.models import Agent
from agents_app.wire import redis_url_for
from audit_app import services as audit
from audit_app.models import AuditLog
from foundation_core.signing import site_public_key


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
    description: str = "",
) -> tuple[Agent, Credentials]:
    """Create an agent (its Redis user follows once committed); return it and its credentials,
    shown once. The row and its audit row are committed together or not at all. What it may
    read is given apart (``secrets_app.grants.create_agent`` does both)."""
    agent = Agent(name=name, public_key=public_key, description=description)
    credentials = Credentials(agent.set_new_token(), agent.set_new_redis_password())
    agent.full_clean()
    with transaction.atomic():
        agent.save()
        audit.record("agents.create", actor, f"agent:{name}", "create")
    return agent, credentials


def credential_history(agent: Agent, limit: int = 20) -> list[Any]:
    """The newest audit rows of what lets someone read this agent's secrets: its creation,
    credentials issued, public key and grant changes, refusals included."""
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
    # Saved: every cache of the agent's look-up forgets it on the signal (secrets_app.grants).
    agent.save(update_fields=["token_hash", "redis_password_hash"])
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
    return [
        ("FOUNDATION_AGENT_NAME", agent.name),
        ("FOUNDATION_AGENT_TOKEN", credentials.token),
        ("FOUNDATION_API_URL", settings.AGENTS_API_URL),
        ("FOUNDATION_REDIS_URL", redis_url_for(agent, credentials.redis_password)),
        # The client refuses secret answers not signed by this key (forged, replayed).
        ("FOUNDATION_SITE_PUBLIC_KEY", site_public_key()),
    ]
