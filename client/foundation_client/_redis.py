"""The client's Redis connections: redis-py's asyncio client, with commands packed by hiredis.

redis-py packs commands with hiredis only in its synchronous client; its asyncio connections use
a pure-Python packer (redis/redis-py#4176, a fix pending in #4191). Messaging sends hundreds of
arguments a call, and that packer was a third of a producer's time. These connection classes
use the synchronous client's hiredis serializer; without hiredis they are the stock ones.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE


class _HiredisPacking:
    _packer = HiredisRespSerializer()

    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = self._packer.pack(*args)
        return packed


class HiredisConnection(_HiredisPacking, Connection):
    pass


class HiredisSSLConnection(_HiredisPacking, SSLConnection):
    pass


class HiredisUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


_FAST: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: HiredisConnection,
    SSLConnection: HiredisSSLConnection,
    UnixDomainSocketConnection: HiredisUnixConnection,
}


def connect(url: str, **options: Any) -> aioredis.Redis:
    """``redis.asyncio.Redis.from_url``, with the faster connections when hiredis is there."""
    pool = ConnectionPool.from_url(url, **options)
    if HIREDIS_AVAILABLE:
        pool.connection_class = _FAST.get(pool.connection_class, pool.connection_class)
    return aioredis.Redis.from_pool(pool)
