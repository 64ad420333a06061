"""Helpers for tests against a real Redis, single or a cluster: the client's own tests use them,
and so can an agent's. Synchronous on purpose: a test checks what is in Redis between steps."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.cluster import RedisCluster

from foundation_client.connections import is_cluster, node_url

__all__ = ["is_cluster", "on_every_node", "sync_client", "url_for"]


def sync_client(url: str) -> Any:
    """A synchronous client of ``url``: ``redis.Redis``, or a ``RedisCluster``."""
    if is_cluster(url):
        return RedisCluster.from_url(node_url(url))
    return redis.Redis.from_url(url)


def on_every_node(client: Any, *command: Any) -> None:
    """Run a per-node command (ACL SETUSER, CLIENT KILL) on every primary: ACL users are kept
    per node, and a cluster does not copy them."""
    if isinstance(client, RedisCluster):
        for node in client.get_primaries():  # type: ignore[no-untyped-call]
            node.redis_connection.execute_command(*command)
    else:
        client.execute_command(*command)


def url_for(url: str, user: str, password: str) -> str:
    """``url`` with another user and password."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))
