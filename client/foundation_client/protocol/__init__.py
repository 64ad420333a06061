"""The wire protocol between agents and the foundation: everything both sides must agree on.

Only what both sides must agree on is here, each part defined in its module (``keys``,
``notices``, ``envelope``, ``events``, ``scripts``, ``answers``, ``sealing``); the helpers both
sides use are ``foundation_client.util`` and ``foundation_client.connections``. The site
(Django) imports these and no private ``foundation_client._*`` module (a test enforces it).

**Versions.** Change what is here and ``PROTOCOL_VERSION`` changes with it:
``client/tests/test_protocol_golden.py`` fails when the content (key strings, ACL rules, Lua
SHAs, envelope and event bytes) changes under the same version, and a released version's golden
file never changes. The site publishes the range of versions it serves (``PROTOCOL_KEY`` in
Redis, ``PROTOCOL_API_PATH`` over HTTP); a client outside it refuses to start
(``check_served``), naming both. A range, so that a rolling upgrade works: the site serves the
old version and the new one until the last old client is gone.

**Keys** (every key an agent owns carries its name as a Redis Cluster hash tag, so each atomic
multi-key operation touches one slot)::

    fdn:{b}:requeue         stream  b's retries and the site's replays (sender from the envelope)
    fdn:{b}:delayed         zset    b's retries waiting for their backoff
    fdn:{b}:done:<a>:<id>   string  b handled a's message <id> (de-duplication)
    fdn:{b}:events          stream  b's status events (delivered, failed, dead), for the recorder
    fdn:{b}:dead            stream  b's dead letters
    fdn:in:<a>:{b}          stream  messages from a to b: only a may append, only b consume
    fdn:site:{b}:events     stream  the site's status events about b's messages (replayed)
    fdn:sys:agents          set     the registered agents (written by the site, read by agents)
    fdn:sys:notices:<what>  pub/sub the site's notices (secrets rotated, config changed, ...)
    fdn:sys:protocol        string  the protocol versions the site serves (read by agents)

Agent names are ``[a-z][a-z0-9_-]*``: they hold no brace or colon, so ``fdn:{b}:...`` and
``fdn:in:<a>:{...}`` can never reach ``fdn:sys:``, ``fdn:site:`` or another agent's keys, and
names such as ``events``, ``dead`` or ``agents`` collide with nothing.

**Who may do what** is the Redis ACL of ``acl_rules``: b's user has its own ``fdn:{b}:*`` keys,
consumes (never appends to, trims or deletes) ``fdn:in:*:{b}``, appends (XADD only) to
``fdn:in:b:{*}``, reads the registry and the served versions, subscribes to the notices and
publishes nothing. So the
sender of an entry in ``fdn:in:a:{b}`` is a: a receiver reads ``envelope.sender`` from the key.
"""

from __future__ import annotations

import json
import logging

from foundation_client._exceptions import MalformedMessage, ProtocolMismatch
from foundation_client.protocol.answers import (
    ANSWER_NONCE,
    ANSWER_NONCE_PATTERN,
    ANSWER_SIGNATURE_ALGORITHM,
    SecretAnswer,
)
from foundation_client.protocol.envelope import (
    ENVELOPE_FIELDS,
    HEAD_FIELDS,
    MESSAGE_ID,
    MESSAGE_TYPE,
    TRACEPARENT,
    Envelope,
)
from foundation_client.protocol.events import (
    LATEST_TIME,
    STATUSES,
    DeadLetter,
    StatusEvent,
    status_event,
)
from foundation_client.protocol.keys import (
    AGENT_NAME,
    AGENT_NAME_PATTERN,
    AGENTS,
    GROUP,
    NOTICES,
    PROTOCOL_API_PATH,
    PROTOCOL_KEY,
    REPLY_TYPE,
    SECRETS_API_PATH,
    acl_rules,
    acl_user,
    agent_key,
    dead_letters,
    delayed,
    done_key,
    events,
    inbox,
    inbox_sender,
    requeue,
    site_events,
)
from foundation_client.protocol.notices import SECRETS_ROTATION_CHANNEL, RotationNotice
from foundation_client.protocol.scripts import (
    ACK,
    AGENT_SCRIPTS,
    DEAD,
    DELETE_IDLE_CONSUMER,
    FAIL,
    PROMOTE,
    REPLAY_DEAD_LETTER,
    REQUEUE,
    TRIM_STREAM,
    trim_arguments,
)
from foundation_client.protocol.sealing import ALGORITHM as SEALING_ALGORITHM
from foundation_client.protocol.sealing import sealing_context

_logger = logging.getLogger("foundation_client.protocol")

#: This client's version of everything here. 1 was the shared-password layout under
#: ``foundation:msg:*`` (``manage.py upgrade_wire`` moves it); 2 one Redis user per agent; 3 adds
#: the published range of served versions (``PROTOCOL_KEY``, readable by every agent).
PROTOCOL_VERSION = 3


def served_document(served: tuple[int, int]) -> dict[str, int]:
    """The site's served range as the JSON object it publishes (``PROTOCOL_API_PATH``)."""
    low, high = served
    return {"min": low, "max": high}


def encode_served(served: tuple[int, int]) -> str:
    """The site's served range as it publishes it in Redis (``PROTOCOL_KEY``)."""
    return json.dumps(served_document(served))


def decode_served(raw: str | bytes | dict[str, object]) -> tuple[int, int]:
    """The range the site published; :class:`MalformedMessage` when it is not one."""
    try:
        data = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
        low, high = data["min"], data["max"]
    except (ValueError, TypeError, KeyError):
        raise MalformedMessage("the site's protocol range is not {min, max}") from None
    if type(low) is not int or type(high) is not int or not 0 < low <= high:
        raise MalformedMessage("the site's protocol range is not {min, max}")
    return low, high


def check_served(served: tuple[int, int], version: int = PROTOCOL_VERSION) -> None:
    """Refuse to go on (:class:`ProtocolMismatch`, naming both) unless the site serves
    ``version``."""
    if not served[0] <= version <= served[1]:
        raise ProtocolMismatch(version, served)


def check_site(published: str | bytes | dict[str, object] | None) -> None:
    """What a client does at start with what the site published (``PROTOCOL_KEY``'s value or
    ``PROTOCOL_API_PATH``'s answer): refuse outside the range. None, nothing published, is a
    site from before the range (version 2): nothing to check against, so it is logged."""
    if published is None:
        _logger.warning("the site publishes no protocol versions (it predates version 3)")
        return
    check_served(decode_served(published))


__all__ = [
    "ACK",
    "AGENTS",
    "AGENT_NAME",
    "AGENT_NAME_PATTERN",
    "AGENT_SCRIPTS",
    "ANSWER_NONCE",
    "ANSWER_NONCE_PATTERN",
    "ANSWER_SIGNATURE_ALGORITHM",
    "DEAD",
    "DELETE_IDLE_CONSUMER",
    "ENVELOPE_FIELDS",
    "FAIL",
    "GROUP",
    "HEAD_FIELDS",
    "LATEST_TIME",
    "MESSAGE_ID",
    "MESSAGE_TYPE",
    "NOTICES",
    "PROMOTE",
    "PROTOCOL_API_PATH",
    "PROTOCOL_KEY",
    "PROTOCOL_VERSION",
    "REPLAY_DEAD_LETTER",
    "REPLY_TYPE",
    "REQUEUE",
    "SEALING_ALGORITHM",
    "SECRETS_API_PATH",
    "SECRETS_ROTATION_CHANNEL",
    "STATUSES",
    "TRACEPARENT",
    "TRIM_STREAM",
    "DeadLetter",
    "Envelope",
    "RotationNotice",
    "SecretAnswer",
    "StatusEvent",
    "acl_rules",
    "acl_user",
    "agent_key",
    "check_served",
    "check_site",
    "dead_letters",
    "decode_served",
    "delayed",
    "done_key",
    "encode_served",
    "events",
    "inbox",
    "inbox_sender",
    "requeue",
    "sealing_context",
    "served_document",
    "site_events",
    "status_event",
    "trim_arguments",
]
