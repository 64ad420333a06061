"""The site's Redis connections: its own (RQ, Channels, cache, notices) and the agents' wire.

``REDIS_URL`` is the site's own single Redis (RQ, Channels and Django's cache do not support
Redis Cluster). ``AGENTS_REDIS_URL`` is where agents talk (messaging, notices, later telemetry
and shared state): the same Redis by default, or a Redis Cluster given as
``redis+cluster://user:password@host:port`` (any one node; the others are discovered).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from redis.cluster import RedisCluster

from foundation_client.connections import is_cluster, node_url


@lru_cache(maxsize=4)
def _pool(url: str) -> redis.ConnectionPool:
    return redis.ConnectionPool.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def get_redis() -> redis.Redis:
    return redis.Redis(connection_pool=_pool(settings.REDIS_URL))


@lru_cache(maxsize=4)
def _cluster(url: str) -> RedisCluster:
    return RedisCluster.from_url(node_url(url), socket_timeout=5, socket_connect_timeout=5)


def get_wire() -> Any:
    """The agents' Redis, as the site's service user: a ``redis.Redis`` or a ``RedisCluster``
    (typed loosely: stream replies are nested unions the callers unpack)."""
    url = settings.AGENTS_REDIS_URL
    if is_cluster(url):
        return _cluster(url)
    return redis.Redis(connection_pool=_pool(url))


def wire_nodes() -> list[Any]:
    """One client per primary node of the agents' Redis (ACL users live on each node)."""
    wire = get_wire()
    if not isinstance(wire, RedisCluster):
        return [wire]
    return [node.redis_connection for node in wire.get_primaries()]  # type: ignore[no-untyped-call]
