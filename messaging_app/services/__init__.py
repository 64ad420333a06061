"""The site's side of messaging, one module per concept: the recorder (status events into
``message_logs``), replay (dead letters and history), and stream health.

The wire (keys, the envelope, events, scripts) is ``foundation_client.protocol``: one definition
for both sides.
"""

from __future__ import annotations

from messaging_app.services.agents import wire_agents
from messaging_app.services.recorder import Recorder, record_entries
from messaging_app.services.replay import (
    DeadLetterView,
    ReplayReport,
    dead_letters,
    replay_dead_letters,
    replay_range,
)
from messaging_app.services.streams import GroupHealth, StreamHealth, stream_health

__all__ = [
    "DeadLetterView",
    "GroupHealth",
    "Recorder",
    "ReplayReport",
    "StreamHealth",
    "dead_letters",
    "record_entries",
    "replay_dead_letters",
    "replay_range",
    "stream_health",
    "wire_agents",
]
