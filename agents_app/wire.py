"""Each agent's Redis identity: an ACL user with the least it needs (``protocol.acl_rules``).

The database is the truth; Redis follows it. After any change to an agent (created, enabled,
disabled, credentials issued, deleted) ``provision`` or ``deprovision`` makes every primary node
of the agents' Redis agree, closes the connections a change must end (``ACL SETUSER off`` does
not: ``CLIENT KILL USER`` does), and saves the ACL file where one is configured, so the users
survive a restart. ``manage.py provision_wire`` does the same for every agent (a new cluster
node, a Redis restored without its ACL file).
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlsplit, urlunsplit

from django.conf import settings
from redis.exceptions import RedisError, ResponseError

from agents_app.models import Agent
from foundation_client.protocol import (
    AGENT_SCRIPTS,
    AGENTS,
    PROTOCOL_KEY,
    PROTOCOL_VERSION,
    acl_rules,
    acl_user,
    encode_served,
)
from foundation_core.redis_client import get_wire, wire_nodes

logger = logging.getLogger("foundation.agents.wire")


def _save_acl(node: object) -> None:
    try:
        node.execute_command("ACL", "SAVE")  # type: ignore[attr-defined]
    except ResponseError as exc:
        if "ACL file" not in str(exc):  # not configured to use one: provisioned at start instead
            raise


def _kill(node: object, user: str) -> None:
    try:
        node.execute_command("CLIENT", "KILL", "USER", user)  # type: ignore[attr-defined]
    except ResponseError as exc:
        if "No such user" not in str(exc):
            raise


#: The protocol versions this site serves, published where every agent reads it at start
#: (``PROTOCOL_KEY``, ``/api/v1/protocol``). Version 2 clients differ only in not checking.
SERVED_PROTOCOL_VERSIONS = (2, PROTOCOL_VERSION)


def load_scripts() -> None:
    """Load the protocol's scripts on every node (agents may only run them by SHA, EVALSHA,
    never load or run a script of their own) and publish the served protocol versions. Cheap
    and idempotent; the recorder does it every few seconds, so a restarted Redis has them
    again at once."""
    for node in wire_nodes():
        for source in AGENT_SCRIPTS:
            node.script_load(source)
    get_wire().set(PROTOCOL_KEY, encode_served(SERVED_PROTOCOL_VERSIONS))


def provision(agent: Agent, *, disconnect: bool = False) -> None:
    """Make the agent's Redis user match its row on every node; with ``disconnect`` (new
    credentials) or when the agent is disabled, end its open connections too."""
    load_scripts()
    user = acl_user(agent.name)
    enabled = agent.is_active and bool(agent.redis_password_hash)
    password = [f"#{agent.redis_password_hash}"] if agent.redis_password_hash else ["nopass"]
    state = "on" if enabled else "off"
    for node in wire_nodes():
        node.execute_command(
            "ACL", "SETUSER", user, "reset", *password, state, *acl_rules(agent.name)
        )
        if disconnect or not enabled:
            _kill(node, user)
        _save_acl(node)
    if enabled:
        get_wire().sadd(AGENTS, agent.name)
    else:
        get_wire().srem(AGENTS, agent.name)


def deprovision(name: str) -> None:
    """Remove the agent's user from every node (which closes its connections)."""
    user = acl_user(name)
    for node in wire_nodes():
        node.execute_command("ACL", "DELUSER", user)
        _kill(node, user)
        _save_acl(node)
    get_wire().srem(AGENTS, name)


def provision_safely(agent: Agent, *, disconnect: bool = False) -> bool:
    """``provision`` from a request or a signal: a Redis that is away is logged, not raised
    (the row is committed; ``manage.py provision_wire`` catches up)."""
    try:
        provision(agent, disconnect=disconnect)
        return True
    except RedisError as exc:
        logger.error("could not provision agent %s on Redis: %s", agent.name, type(exc).__name__)
        return False


def redis_url_for(agent: Agent, password: str) -> str:
    """The agents' Redis as this agent reaches it, with its own user and password."""
    parts = urlsplit(settings.AGENTS_REDIS_PUBLIC_URL)
    host = parts.netloc.rpartition("@")[2]
    userinfo = f"{quote(acl_user(agent.name), safe='')}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))
