"""One Redis connection pool per process for the site's own use (pub/sub notices, state)."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=4)
def _pool(url: str) -> redis.ConnectionPool:
    return redis.ConnectionPool.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def get_redis() -> redis.Redis:
    return redis.Redis(connection_pool=_pool(settings.REDIS_URL))
