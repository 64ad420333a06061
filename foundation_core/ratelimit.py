"""Rate limits and lock-outs (finding 3 of the review), with ``limits`` on the site's Redis.

- **Failed authentications**, counted per client address on the agent API (both ways a read
  arrives: they share ``secrets_app.reading.serve``) and per user name and per address at the
  admin's log-in. Within
  ``RATELIMIT_API_FAILURES`` (20 a minute, a moving window) a failure is answered as such and
  audited as a row; beyond it the address gets 429 with ``Retry-After`` and no row: the refusals
  are counted in Redis, and once the window has passed one ``rate_limited`` summary row says how
  many (``flush_refused``, every minute from the cron scheduler). So a flood writes a bounded
  number of rows, and Suspicious activity still counts every attempt.
- **The admin's log-in** is locked for a user name after ``RATELIMIT_LOGIN_FAILURES`` (5 in 15
  minutes), and for an address after ``RATELIMIT_LOGIN_ADDRESS_FAILURES`` (30 in 15 minutes:
  admins share addresses too, and one guessing user names must not lock the others out for
  long); the lock is lifted by time, or by an admin
  (``manage.py unlock_login``), and each attempt while locked is refused without checking the
  password.
- **Successful agent reads** are limited only by ``RATELIMIT_AGENT_READS``, per agent, empty (off)
  by default: many agents share one address (a NAT, one host), so reads are never limited per
  address.

A request with a valid token is never refused for its address's failures.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from limits import RateLimitItem, parse
from limits.storage import RedisStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

logger = logging.getLogger("foundation.ratelimit")

#: What each kind of limit counts, and the setting that says how many.
KINDS = {
    "api": "RATELIMIT_API_FAILURES",  # failed agent authentications, per address
    "login-user": "RATELIMIT_LOGIN_FAILURES",  # failed admin log-ins, per user name
    "login-ip": "RATELIMIT_LOGIN_ADDRESS_FAILURES",  # failed admin log-ins, per address
    "reads": "RATELIMIT_AGENT_READS",  # successful agent reads, per agent (off by default)
}
#: Refusals not written as rows yet: a set of "kind|key", and a counter for each.
_REFUSED = "foundation:ratelimit:refused"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0  # seconds, when refused


@lru_cache(maxsize=1)
def _storage(url: str) -> RedisStorage:
    storage = storage_from_string(url)
    assert isinstance(storage, RedisStorage)
    return storage


def _limiter() -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(_storage(settings.REDIS_URL))


def _item(kind: str) -> RateLimitItem | None:
    text = getattr(settings, KINDS[kind])
    return parse(text) if text else None


def _refused_verdict(kind: str, key: str, item: RateLimitItem) -> Verdict:
    reset, _ = _limiter().get_window_stats(item, kind, key)
    return Verdict(False, max(1, math.ceil(reset - time.time())))


def _refusal(kind: str, key: str, item: RateLimitItem) -> Verdict:
    storage = _storage(settings.REDIS_URL).storage
    pipe = storage.pipeline()
    pipe.sadd(_REFUSED, f"{kind}|{key}")
    pipe.incr(f"{_REFUSED}:{kind}|{key}")
    pipe.execute()
    return _refused_verdict(kind, key, item)


def hit(kind: str, key: str) -> Verdict:
    """Count one event (a failure, or a read against a quota); refused when over the limit,
    and then counted for the summary row instead of being audited."""
    item = _item(kind)
    if item is None or _limiter().hit(item, kind, key):
        return Verdict(True)
    return _refusal(kind, key, item)


def blocked(kind: str, key: str) -> Verdict:
    """Whether ``key`` is over its limit now, without counting anything."""
    item = _item(kind)
    if item is None or _limiter().test(item, kind, key):
        return Verdict(True)
    return _refused_verdict(kind, key, item)


def refused(kind: str, key: str) -> None:
    """Count one refusal of an attempt made while blocked (no row of its own)."""
    item = _item(kind)
    if item is not None:
        _refusal(kind, key, item)


def clear(kind: str, key: str) -> None:
    """Lift a limit (an admin unlocking a log-in)."""
    item = _item(kind)
    if item is not None:
        _limiter().clear(item, kind, key)


def reset_all() -> None:
    """Forget every limit and every uncounted refusal (tests)."""
    _storage(settings.REDIS_URL).reset()
    storage = _storage(settings.REDIS_URL).storage
    for member in storage.smembers(_REFUSED):
        storage.delete(f"{_REFUSED}:{member.decode()}")
    storage.delete(_REFUSED)


#: Who writes the summary row of each kind's refusals: its owner, registered in its app's
#: ``ready`` (``on_refused``). This module knows no audit event of its own.
Summary = Callable[[str, int], None]
_summaries: dict[str, Summary] = {}


def on_refused(kind: str, summary: Summary) -> None:
    """Have ``summary(key, count)`` write the one row that says ``count`` attempts of ``kind``
    by ``key`` were refused while its window lasted."""
    if kind not in KINDS:
        raise ValueError(f"unknown rate limit {kind!r}")
    _summaries[kind] = summary


def flush_refused(*, force: bool = False) -> int:
    """One summary row for each address or name whose window has passed, with how many
    attempts were refused meanwhile, by the kind's owner. Returns the rows written."""
    storage = _storage(settings.REDIS_URL).storage
    written = 0
    for raw in storage.smembers(_REFUSED):
        member = raw.decode()
        kind, _, key = member.partition("|")
        summary = _summaries.get(kind)
        if summary is None or (not force and not blocked(kind, key).allowed):
            continue  # still refusing (or no owner yet): its summary comes later
        count = storage.getdel(f"{_REFUSED}:{member}")
        storage.srem(_REFUSED, member)
        if not count:
            continue
        summary(key, int(count))
        written += 1
    return written
