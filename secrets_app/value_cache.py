"""A small in-process cache of secret values, keyed by (secret id, version).

Versions never change once written, so a cached version can only be stale by being deleted: a
rotation, a new value or a rollback makes a new version, and the next read asks the backend for
it. This spares the agent API a Vault round trip per read (Vault Agent's cache does the same).
Entries live in this process's memory only, for ``SECRETS_SITE_CACHE_SECONDS`` at most (0 turns
the cache off); nothing is written to disk, Redis or the database.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from django.conf import settings

from foundation_core import notices

_MAX_ENTRIES = 1024
_lock = threading.Lock()
_entries: OrderedDict[tuple[int, int], tuple[str, float]] = OrderedDict()


def get(secret_id: int, version: int) -> str | None:
    with _lock:
        entry = _entries.get((secret_id, version))
        if entry is None:
            return None
        value, expires = entry
        if time.monotonic() >= expires:
            del _entries[(secret_id, version)]
            return None
        _entries.move_to_end((secret_id, version))
        return value


def put(secret_id: int, version: int, value: str) -> None:
    """Keep a version's value; an older version than one kept is not kept (a rollback reads
    one), and a newer one makes the older ones go."""
    ttl = settings.SECRETS_SITE_CACHE_SECONDS
    if ttl <= 0 or not notices.started():  # kept only where other processes' changes arrive
        return
    with _lock:
        kept = [k for k in _entries if k[0] == secret_id]
        if any(v > version for _, v in kept):
            return
        for key in kept:
            if key[1] < version:
                del _entries[key]
        _entries[(secret_id, version)] = (value, time.monotonic() + ttl)
        _entries.move_to_end((secret_id, version))
        while len(_entries) > _MAX_ENTRIES:
            _entries.popitem(last=False)


def forget_older(secret_id: int, version: int) -> None:
    """Drop a secret's versions older than ``version`` (0: the secret was deleted, drop all)."""
    with _lock:
        for key in [k for k in _entries if k[0] == secret_id and (version == 0 or k[1] < version)]:
            del _entries[key]


def forget(secret_id: int | None = None) -> None:
    """Drop one secret's versions, or everything."""
    with _lock:
        if secret_id is None:
            _entries.clear()
            return
        for key in [k for k in _entries if k[0] == secret_id]:
            del _entries[key]


def on_notice(message: dict[str, Any] | None) -> None:
    """What a notice makes this cache forget (registered with ``foundation_core.notices``)."""
    if message is None:
        forget()
        return
    secret_id, version = message.get("secret_id"), message.get("version")
    if isinstance(secret_id, int) and isinstance(version, int):
        forget_older(secret_id, version)
