"""Grants: which secrets an agent may read, and the agent API's look-up of a token's holder.

A grant is a secrets policy, so it lives here; ``agents_app`` keeps identities and credentials
and imports nothing of this. The agent API loads a token's agent, its grants' patterns and the
secret asked for in one query (``lookup_query``), and keeps what it found for the token in this
process for ``AGENT_AUTH_CACHE_SECONDS``: any change to an agent or a grant, in any site process,
clears it at once (``foundation_core.notices``), and the period bounds what a missed notice
could leave.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connection, models, transaction

from agents_app import services as agents
from agents_app.models import Agent
from audit_app import services as audit
from foundation_core import notices
from secrets_app.models import CURRENT_COLUMNS, SecretGrant, SecretMetadata


def grant_matches(pattern: str, secret_name: str) -> bool:
    """A grant pattern is an exact name, or a prefix ending in ``*``."""
    if pattern.endswith("*"):
        return secret_name.startswith(pattern[:-1])
    return secret_name == pattern


@dataclass(frozen=True, slots=True)
class Reader:
    """A token's holder as the agent API sees it: the agent and its grants' patterns, loaded
    together (``look_up``) or from the agent (``of``)."""

    agent: Agent
    patterns: tuple[str, ...]

    def may_read(self, secret_name: str) -> bool:
        return any(grant_matches(pattern, secret_name) for pattern in self.patterns)


# --- The look-up -----------------------------------------------------------------------------

#: What the agent API uses of an agent, in the model's field order (as ``from_db`` takes them);
#: the other fields are deferred (loaded if ever read), so that a save() writes only these.
LOOKUP_FIELDS = ("id", "name", "token_hash", "public_key", "is_active")


def lookup_query(token_hash: str, secret_name: str | None) -> tuple[str, list[str]]:
    """The SQL and parameters of ``look_up``: the agent with this token hash, its grants'
    patterns and, when ``secret_name`` is given, that secret's current row. Both ways a read
    runs (``secrets_app.reading``: Django's connection, psycopg's pool) send this statement."""
    if secret_name is None:
        return _lookup_sql(False), [token_hash]
    return _lookup_sql(True), [secret_name, token_hash]


def from_lookup(
    rows: list[Any], secret_name: str | None
) -> tuple[Reader | None, SecretMetadata | None]:
    """The token's holder and the secret's row (``SecretMetadata.current``'s answer) from the
    rows of ``lookup_query``."""
    if not rows:
        return None, None
    width = len(LOOKUP_FIELDS)
    first = rows[0]
    # The default alias by name: on the event loop, ``connection`` would make a new
    # connection object for each request's task.
    agent = Agent.from_db(DEFAULT_DB_ALIAS, list(LOOKUP_FIELDS), first[:width])
    reader = Reader(agent, tuple(row[-1] for row in rows if row[-1] is not None))
    secret = None
    if secret_name is not None and first[width] is not None:
        secret = SecretMetadata.from_current(secret_name, first[width : width + 3])
    return reader, secret


def look_up(
    token_hash: str, secret_name: str | None
) -> tuple[Reader | None, SecretMetadata | None]:
    """``lookup_query`` on Django's connection.

    One plain SELECT with joins rather than querysets: on the agent API's hottest path (every
    read when the token cache is off or cold) the ORM's two compiled queries cost several times
    this one (docs/measurements.md)."""
    sql, params = lookup_query(token_hash, secret_name)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return from_lookup(rows, secret_name)


@functools.cache
def _lookup_sql(with_secret: bool) -> str:
    quote = connection.ops.quote_name  # both vendors quote names alike

    def column(model: type[models.Model], name: str) -> str:
        # Concrete fields only, so a column always: its name, never a value, is formatted in.
        return quote(str(cast("models.Field[Any, Any]", model._meta.get_field(name)).column))

    columns = ", ".join("a." + column(Agent, f) for f in LOOKUP_FIELDS)
    secret_join = ""
    if with_secret:
        meta = SecretMetadata
        columns += ", " + ", ".join("s." + column(meta, f) for f in CURRENT_COLUMNS)
        secret_join = (
            f" LEFT JOIN {quote(meta._meta.db_table)} s ON s.{column(meta, 'secret_name')} = %s"
        )
    grant = SecretGrant
    return (
        f"SELECT {columns}, g.{column(grant, 'pattern')}"  # noqa: S608  # nosec B608
        f" FROM {quote(Agent._meta.db_table)} a LEFT JOIN {quote(grant._meta.db_table)} g"
        f" ON g.{column(grant, 'agent')} = a.{column(Agent, 'id')}"
        f"{secret_join} WHERE a.{column(Agent, 'token_hash')} = %s"
    )


# --- The token cache -------------------------------------------------------------------------

_cache: dict[str, tuple[Reader | None, float]] = {}
_lock = threading.Lock()
_generation = 0  # bumped by every forget: a look-up begun before is not kept


def forget() -> None:
    """Drop every cached look-up (called whenever an agent or a grant changes)."""
    global _generation
    with _lock:
        _cache.clear()
        _generation += 1


def generation() -> int:
    """Taken before a look-up and given to ``remember``: a change that arrives while the look-up
    runs keeps its (perhaps revoked) holder out of the cache."""
    return _generation


def cached(token_hash: str) -> tuple[bool, Reader | None]:
    """(True, the holder or None) when this token's look-up is in the cache, else (False, None)."""
    with _lock:
        found = _cache.get(token_hash)
    if found is not None and time.monotonic() < found[1]:
        return True, found[0]
    return False, None


def remember(token_hash: str, reader: Reader | None, since: int) -> None:
    """Keep a token's look-up for ``AGENT_AUTH_CACHE_SECONDS`` (0: not at all), unless agents or
    grants changed since ``since`` (``generation()`` taken before the look-up)."""
    ttl = settings.AGENT_AUTH_CACHE_SECONDS
    if ttl <= 0 or not notices.started():  # kept only where other processes' changes arrive
        return
    with _lock:
        if since != _generation:
            return
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[token_hash] = (reader, time.monotonic() + ttl)


def on_notice(message: dict[str, Any] | None) -> None:
    """What a notice makes the token cache forget (registered with ``foundation_core.notices``):
    everything, on any change to an agent or a grant, and when notices may have been missed."""
    if message is None or message.get("agents"):
        forget()


def _changed(**kwargs: object) -> None:
    forget()
    # Again once the change is visible to other connections, in case a read in between cached
    # the old state; and in every other site process (a revocation takes effect everywhere).
    transaction.on_commit(forget)
    notices.publish_on_commit({"agents": True})


# --- Giving grants ---------------------------------------------------------------------------


def create_agent(
    name: str,
    *,
    actor: object,
    grants: Iterable[str] = (),
    public_key: str = "",
    description: str = "",
) -> tuple[Agent, agents.Credentials]:
    """``agents_app.services.create_agent`` with the agent's grants, in one transaction: a bad
    pattern creates nothing. Each grant is audited as the admin's are (``agents.grant``)."""
    given = [SecretGrant(pattern=pattern) for pattern in grants]
    for grant in given:
        grant.full_clean(exclude=["agent"], validate_unique=False)
    patterns = [grant.pattern for grant in given]
    twice = sorted({pattern for pattern in patterns if patterns.count(pattern) > 1})
    if twice:  # a new agent has no grants: the only pair that can already exist is one given twice
        raise ValidationError({"pattern": [f"the grant {twice[0]!r} already exists (given twice)"]})
    with transaction.atomic():
        agent, credentials = agents.create_agent(
            name, actor=actor, public_key=public_key, description=description
        )
        for grant in given:
            grant.agent = agent
            grant.save()
    return agent, credentials


def _grant_saved(sender: type[SecretGrant], instance: SecretGrant, created: bool, **_: Any) -> None:
    audit.record_for_request(
        "agents.grant",
        f"agent:{instance.agent.name}",
        "add" if created else "change",
        pattern=instance.pattern,
    )


def _grant_deleted(sender: type[SecretGrant], instance: SecretGrant, **_: Any) -> None:
    agent = Agent.objects.filter(pk=instance.agent_id).values_list("name", flat=True).first()
    audit.record_for_request(
        "agents.grant", f"agent:{agent or '(deleted)'}", "remove", pattern=instance.pattern
    )


def connect() -> None:
    """Wire the signals (``SecretsConfig.ready``): the token cache forgets on every change to an
    agent or a grant, and every grant given or taken is audited, however it is made."""
    from django.db.models.signals import post_delete, post_save

    for model in (Agent, SecretGrant):
        name = model.__name__
        post_save.connect(_changed, sender=model, dispatch_uid=f"grants_forget_{name}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"grants_forget_d_{name}")
    post_save.connect(_grant_saved, sender=SecretGrant, dispatch_uid="audit_grant_save")
    post_delete.connect(_grant_deleted, sender=SecretGrant, dispatch_uid="audit_grant_delete")
