"""Names: of agents, of the keys and channels the protocol uses, and each agent's Redis ACL."""

from __future__ import annotations

import re

from foundation_client._exceptions import InvalidArgument
from foundation_client.util import as_text

#: Agent names: plain tokens (they name streams and audit actors, and need no escaping).
AGENT_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}\Z"
AGENT_NAME = re.compile(AGENT_NAME_PATTERN)

SECRETS_API_PATH = "/api/v1/secrets/"
#: Where the site answers the range of protocol versions it serves (``protocol.encode_served``).
PROTOCOL_API_PATH = "/api/v1/protocol"

#: The consumer group every agent reads its inboxes in (all processes of one agent share it).
GROUP = "agents"
#: The registered agents' names: written by the site, read by agents (broadcast, inboxes).
AGENTS = "fdn:sys:agents"
#: Prefix of the site's pub/sub notices; agents may subscribe to them, never publish.
NOTICES = "fdn:sys:notices:"
#: The range of protocol versions the site serves (``protocol.encode_served``): written by the
#: site, read by every agent at start.
PROTOCOL_KEY = "fdn:sys:protocol"
REPLY_TYPE = "__reply__"


def agent_key(agent: str, part: str) -> str:
    """A key of ``agent``'s own (``fdn:{agent}:part``)."""
    return f"fdn:{{{agent}}}:{part}"


def inbox(receiver: str, sender: str) -> str:
    """The stream of messages from ``sender`` to ``receiver``."""
    return f"fdn:in:{sender}:{{{receiver}}}"


def inbox_sender(key: str | bytes) -> str | None:
    """The sender an inbox key names, or None when it is not an inbox key."""
    text = as_text(key)
    if not text.startswith("fdn:in:"):
        return None
    sender, sep, rest = text[7:].partition(":{")
    if not sep or not rest.endswith("}") or not AGENT_NAME.match(sender):
        return None
    return sender


def requeue(agent: str) -> str:
    return agent_key(agent, "requeue")


def delayed(agent: str) -> str:
    return agent_key(agent, "delayed")


def done_key(agent: str, sender: str, message_id: str) -> str:
    """``agent`` handled ``sender``'s message ``message_id``. Per sender: ids are chosen by
    senders, and one must not be able to make another's message look handled."""
    return agent_key(agent, f"done:{sender}:{message_id}")


def events(agent: str) -> str:
    return agent_key(agent, "events")


def dead_letters(agent: str) -> str:
    return agent_key(agent, "dead")


def site_events(agent: str) -> str:
    """Status events the site writes about ``agent``'s messages: in its slot, out of its reach."""
    return f"fdn:site:{{{agent}}}:events"


def acl_user(agent: str) -> str:
    """The Redis ACL user of an agent (prefixed, so no agent can be ``default``)."""
    return f"agent-{agent}"


def acl_rules(agent: str) -> list[str]:
    """The ACL rules of ``agent``'s Redis user, without its password and on/off state.

    Root permissions: its own keys (streams, strings, hashes, sets, sorted sets, lists, expiry),
    scripts (which run with these same permissions), subscribing to the notices. Selectors add,
    each with its own keys: consuming its inboxes (no XADD, XTRIM, XDEL, DEL or XGROUP DESTROY
    there), appending to the inboxes it sends to (XADD only), reading the registry and the
    served protocol versions. Nothing
    else: no PUBLISH, no SCAN or KEYS, nothing @dangerous.
    """
    if not AGENT_NAME.match(agent):
        raise InvalidArgument(f"{agent!r} is not an agent name")
    # EVALSHA only: the site loads the protocol's scripts (``AGENT_SCRIPTS``). EVAL or SCRIPT
    # LOAD would let an agent run a loop that stops the server for everyone.
    scripts = ["+evalsha", "+evalsha_ro"]
    return [
        "resetkeys",
        f"~{agent_key(agent, '*')}",
        "resetchannels",
        f"&{NOTICES}*",
        "-@all",
        *("+@stream", "+@string", "+@hash", "+@set", "+@sortedset", "+@list"),
        *("+del", "+unlink", "+exists", "+type", "+ttl", "+pttl", "+persist"),
        *("+expire", "+pexpire", "+expireat", "+pexpireat"),
        *scripts,
        "+script|exists",
        *("+subscribe", "+unsubscribe", "+psubscribe", "+punsubscribe"),
        # Connection commands by name: @connection would include CLIENT TRACKING, whose
        # broadcast mode tells a client every key name anyone writes.
        *("+hello", "+auth", "+ping", "+echo", "+quit", "+reset", "+select"),
        *("+client|id", "+client|info", "+client|setname", "+client|getname"),
        *("+command", "+readonly", "+readwrite", "+asking"),
        *("+cluster|slots", "+cluster|shards", "+cluster|nodes", "+cluster|myid"),
        *("-sort", "-sort_ro", "-@dangerous", "-publish", "-spublish"),
        " ".join(
            (
                f"(~fdn:in:*:{{{agent}}}",
                f"~{agent_key(agent, '*')}",
                "+xreadgroup +xack +xclaim +xautoclaim +xpending +xinfo",
                "+xgroup|create +xgroup|createconsumer +xgroup|delconsumer",
                "+xlen +xrange +xrevrange",
                " ".join(scripts) + ")",
            )
        ),
        f"(%W~fdn:in:{agent}:{{*}} +xadd)",
        f"(%R~{AGENTS} +smembers +sismember +scard)",
        f"(%R~{PROTOCOL_KEY} +get)",
    ]
