"""Caches that forget at once, in every site process (finding 9 of the review).

Site processes keep small caches (the agents app's token look-ups, the secrets app's values by
version). A change made in one process used to clear only that process's: a revoked token or a
removed grant kept working for seconds elsewhere, and a deleted secret's value stayed cached.

Now every change that must be forgotten (an agent or a grant changed, disabled, deleted or given
new credentials; a secret's new version, rollback or deletion) is published, once committed, on
the site's own Redis (``REDIS_URL``, where agents have no access), and a thread in each process
that caches anything listens and hands each notice to what the apps registered (``register``).
While the listener is not connected (Redis away, or before it first subscribed) nothing is lost:
on each (re)subscription it forgets everything, and the TTLs still bound what a missed notice
could leave.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import transaction
from redis.exceptions import RedisError

logger = logging.getLogger("foundation.notices")

CHANNEL = "foundation:site:forget"

_started = False
_start_lock = threading.Lock()
#: Set once the listener is subscribed; tests wait on it.
subscribed = threading.Event()


def publish_on_commit(message: dict[str, Any]) -> None:
    """Tell every site process, once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: publish(message))


def publish(message: dict[str, Any]) -> None:
    from foundation_core.redis_client import get_redis

    try:
        get_redis().publish(CHANNEL, json.dumps(message))
    except RedisError as exc:  # the TTLs still bound staleness; never fail the change for it
        logger.warning("could not publish a cache notice: %s", type(exc).__name__)


Forget = Callable[[dict[str, Any] | None], None]
_forgetters: list[Forget] = []


def register(forget: Forget) -> None:
    """Have ``forget`` called with each notice, and with None when everything must be
    forgotten (the listener's (re)subscription). Apps register theirs in ``AppConfig.ready``:
    this module knows no cache of its own."""
    if forget not in _forgetters:
        _forgetters.append(forget)


def forget_everything() -> None:
    for forget in _forgetters:
        forget(None)


def apply(message: dict[str, Any]) -> None:
    """Forget what one notice says has changed."""
    for forget in _forgetters:
        forget(message)


def start() -> None:
    """Start this process's listener, once: the ASGI lifespan does, as does anything else that
    serves from caches (tests). Until it has started, nothing may be cached (``started``)."""
    global _started
    if _started:
        return
    with _start_lock:
        if _started:
            return
        threading.Thread(target=_listen, name="foundation-notices", daemon=True).start()
        _started = True


def started() -> bool:
    """Whether this process hears notices: caches keep nothing otherwise, since a change made
    elsewhere would not reach them."""
    return _started


def _listen() -> None:
    from foundation_core.redis_client import get_redis

    delay = 0.5
    while True:
        try:
            pubsub = get_redis().pubsub()
            pubsub.subscribe(CHANNEL)
            for raw in pubsub.listen():  # type: ignore[no-untyped-call]
                if raw["type"] == "subscribe":
                    # Whatever was announced while we were not listening is forgotten too.
                    forget_everything()
                    subscribed.set()
                    delay = 0.5
                elif raw["type"] == "message":
                    try:
                        apply(json.loads(raw["data"]))
                    except (ValueError, TypeError):
                        logger.warning("ignored a malformed cache notice")
        except Exception as exc:  # a daemon thread: never die, never spin
            subscribed.clear()
            logger.warning("cache notices: %s; listening again in %.1fs", type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
