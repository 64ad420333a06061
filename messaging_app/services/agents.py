"""Which agents the wire has: the registered ones (the database) and the registry set in Redis."""

from __future__ import annotations

from foundation_client.protocol import AGENT_NAME, AGENTS
from foundation_client.util import as_text
from foundation_core.redis_client import get_wire


def wire_agents() -> list[str]:
    """Every agent name the site knows of, sorted: registered agents and the Redis registry
    (agents registered by hand, or whose rows were deleted with messages still in flight)."""
    from agents_app.models import Agent

    names = set(Agent.objects.values_list("name", flat=True))
    names.update(as_text(n) for n in get_wire().smembers(AGENTS))
    return sorted(n for n in names if AGENT_NAME.match(n))
