"""Stream health: every agent's streams, their length, groups, pending entries and consumers,
and how far the recorder has read them. Inboxes no group reads (an agent that never consumes)
are listed too: they are bounded by the sender's cap and the recorder's trim."""

from __future__ import annotations

from dataclasses import dataclass

from foundation_client.protocol import dead_letters, events, inbox, requeue, site_events
from foundation_client.util import as_text
from foundation_core.redis_client import get_wire
from messaging_app.models import RecorderCursor
from messaging_app.services.agents import wire_agents


@dataclass(frozen=True)
class GroupHealth:
    name: str
    pending: int
    oldest_pending_seconds: float | None
    consumers: list[tuple[str, int, float]]  # name, pending, idle seconds
    lag: int | None


@dataclass(frozen=True)
class StreamHealth:
    stream: str
    agent: str
    length: int
    groups: list[GroupHealth]
    recorded_up_to: str | None


def stream_health() -> list[StreamHealth]:
    """Three pipelined round trips whatever the number of streams."""
    wire = get_wire()
    agents = wire_agents()
    keys = [
        (agent, key)
        for agent in agents
        for key in (
            requeue(agent),
            events(agent),
            dead_letters(agent),
            site_events(agent),
            *(inbox(agent, sender) for sender in agents),
        )
    ]
    pipe = wire.pipeline(transaction=False)
    for _, key in keys:
        pipe.xlen(key)
    lengths = pipe.execute()
    present = [(agent, key, n) for (agent, key), n in zip(keys, lengths, strict=True) if n or False]
    exists = wire.pipeline(transaction=False)
    for _, key, _ in present:
        exists.xinfo_groups(key)
    groups_of = exists.execute(raise_on_error=False)
    detail = wire.pipeline(transaction=False)
    wanted: list[tuple[str, str]] = []
    for (_, key, _), groups in zip(present, groups_of, strict=True):
        for info in groups if isinstance(groups, list) else []:
            group = as_text(info["name"])
            detail.xpending_range(key, group, "-", "+", 1)
            detail.xinfo_consumers(key, group)
            wanted.append((key, group))
    answers = detail.execute(raise_on_error=False)
    found = {pair: (answers[2 * i], answers[2 * i + 1]) for i, pair in enumerate(wanted)}
    cursors = dict(
        RecorderCursor.objects.filter(stream__in=[key for _, key, _ in present]).values_list(
            "stream", "last_id"
        )
    )
    report = []
    for (agent, key, length), groups in zip(present, groups_of, strict=True):
        healths = []
        for info in groups if isinstance(groups, list) else []:
            group = as_text(info["name"])
            first, consumers = found[(key, group)]
            oldest = None
            if info["pending"] and isinstance(first, list) and first:
                oldest = first[0]["time_since_delivered"] / 1000
            healths.append(
                GroupHealth(
                    group,
                    int(info["pending"]),
                    oldest,
                    [
                        (as_text(c["name"]), int(c["pending"]), c["idle"] / 1000)
                        for c in (consumers if isinstance(consumers, list) else [])
                    ],
                    info.get("lag"),
                )
            )
        report.append(StreamHealth(key, agent, int(length), healths, cursors.get(key)))
    return report
