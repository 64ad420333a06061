"""The client's Redis connections: redis-py's asyncio client, with commands packed by hiredis.

Before redis-py 8.2 its asyncio connections packed commands in pure Python (redis/redis-py#4176);
8.2 packs them with hiredis, but first passes every argument through its encoder in Python.
Messaging sends hundreds of arguments a call (an acknowledgement of 500 ids costs several times
more stock on 8.2: docs/measurements.md), so these connection classes hand text, bytes
and numbers to hiredis as they are and leave everything else to redis-py's own packer. Without
hiredis they are the stock ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.utils import HIREDIS_AVAILABLE

if HIREDIS_AVAILABLE:
    import hiredis


class _HiredisPacking(AbstractConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        """As redis-py's hiredis packer, without its pass over every argument in Python (an
        acknowledgement carries hundreds): hiredis takes text, bytes and numbers as they are,
        and anything else goes the stock way."""
        first = args[0]
        if (b" " if isinstance(first, bytes) else " ") not in first:  # not "CONFIG GET"
            try:
                return [hiredis.pack_command(args)]
            except TypeError:
                pass  # a bytearray, a memoryview or a bad type: redis-py's packer decides
        return super().pack_command(*args)


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


#: A Redis Cluster is given as ``redis+cluster://user:password@host:port`` (any one node; the
#: others are discovered), or ``rediss+cluster://`` with TLS.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


#: Every scheme a Redis URL of the wire may have.
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix", *CLUSTER_SCHEMES})


def is_cluster(url: str) -> bool:
    return url.partition("://")[0] in CLUSTER_SCHEMES


def node_url(url: str) -> str:
    """A cluster URL as redis-py takes it (``redis+cluster://`` to ``redis://``): the URL of the
    node it names. Any other URL as it is."""
    scheme, _, rest = url.partition("://")
    return f"{CLUSTER_SCHEMES[scheme]}://{rest}" if scheme in CLUSTER_SCHEMES else url


def redacted_url(url: str) -> str:
    """``url`` without its user-info (user name and password), for errors and logs:
    ``redis://***@host:6379/0``. It works on a malformed URL too, which is when an error shows
    one: everything before the last ``@`` after the scheme goes, even where a strict parser
    would not find user-info."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    _, at, location = rest.rpartition("@")
    return f"{scheme}{sep}***@{location}" if at else url


def connect(url: str, **options: Any) -> Any:
    """``redis.asyncio.Redis.from_url``, with the faster connections when hiredis is there; or
    a ``RedisCluster`` for a cluster URL. Every key an agent touches in one command carries one
    hash tag, so the same calls work on both."""
    if is_cluster(url):
        return RedisCluster.from_url(node_url(url), **options)
    pool = ConnectionPool.from_url(url, **options)
    if HIREDIS_AVAILABLE:
        pool.connection_class = _FAST.get(pool.connection_class, pool.connection_class)
    return aioredis.Redis.from_pool(pool)


def connect_notices(url: str) -> aioredis.Redis:
    """A connection for the site's pub/sub notices. On a cluster, to the node the URL names:
    a PUBLISH reaches every node of a Redis Cluster, so one node is enough to listen on (and
    redis-py's asyncio cluster client has no pub/sub)."""
    result: aioredis.Redis = connect(node_url(url))
    return result


def _pack(connection: Any, commands: list[tuple[Any, ...]]) -> Any:
    """The commands in Redis's protocol, as one buffer: by hiredis directly when it is there.
    redis-py's packing checks and converts every argument in Python first, and was a quarter of
    a producer's time; ours are text, bytes and integers, which hiredis takes as they are."""
    if HIREDIS_AVAILABLE:
        with contextlib.suppress(TypeError):  # a memoryview, or no type Redis takes
            return b"".join([hiredis.pack_command(args) for args in commands])
    return connection.pack_commands(commands)  # converts, or raises redis-py's DataError


async def send_batch(client: Any, commands: list[tuple[Any, ...]]) -> None:
    """Send ``commands`` and read their replies in one round trip, under one timeout; raise
    the first error reply (after reading them all, so the connection stays in step).

    redis-py's asyncio pipeline wraps the read of every reply in a timeout of its own: for a batch
    of 500 XADDs that was most of a producer's time (docs/measurements.md). On a cluster, redis-py's
    cluster pipeline routes each command."""
    if isinstance(client, RedisCluster):
        async with client.pipeline(transaction=False) as pipe:
            for args in commands:
                pipe.execute_command(*args)
            await pipe.execute()
        return
    pool = client.connection_pool
    connection = await pool.get_connection()
    try:
        await connection.send_packed_command(_pack(connection, commands))
        async with asyncio.timeout(connection.socket_timeout):
            replies = [
                await connection._read_response_from_parser(disable_decoding=True) for _ in commands
            ]
    except BaseException:
        await connection.disconnect()  # a reply may be half read: never reuse the connection
        raise
    finally:
        await pool.release(connection)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
