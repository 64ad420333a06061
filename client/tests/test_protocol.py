"""The declared protocol: what it exports, and a key layout no name can break."""

from __future__ import annotations

import re
import types

import pytest

from foundation_client import protocol
from foundation_client.protocol import (
    AGENTS,
    acl_rules,
    agent_key,
    dead_letters,
    events,
    inbox,
    inbox_sender,
    requeue,
    site_events,
)


def test_the_protocol_declares_everything_it_offers_in_all():
    public = {
        name
        for name, value in vars(protocol).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", "") != "__future__"
    } - {"annotations", "MalformedMessage", "ProtocolMismatch"}
    assert set(protocol.__all__) == public
    assert len(protocol.__all__) == len(set(protocol.__all__))


def test_the_protocol_offers_only_wire_things_each_defined_in_it():
    """Helpers (text, JSON, ids, URLs, sealing's functions) are not the protocol: they live in
    ``foundation_client.util``, ``connections`` and ``protocol.sealing``."""
    for helper in ("as_text", "dump_json", "new_id", "redacted_url", "is_cluster", "seal"):
        assert helper not in protocol.__all__
    for name in protocol.__all__:
        value = getattr(protocol, name)
        if callable(value):  # functions and classes; the rest are constants
            assert value.__module__.startswith("foundation_client.protocol"), name


@pytest.mark.parametrize("name", ["events", "dead", "agents", "sys", "in", "site", "requeue"])
def test_names_that_were_system_keys_collide_with_nothing(name):
    own = [agent_key(name, "x"), requeue(name), events(name), dead_letters(name), inbox(name, "a")]
    for key in own:
        assert not key.startswith(("fdn:sys:", "fdn:site:"))
    assert AGENTS not in own
    assert inbox("a", name) != inbox(name, "a")


def test_every_key_of_an_agent_hashes_to_its_slot():
    def tag(key: str) -> str:
        found = re.search(r"\{([^}]*)\}", key)
        assert found is not None
        return found.group(1)

    for key in (requeue("b"), events("b"), dead_letters("b"), inbox("b", "a"), site_events("b")):
        assert tag(key) == "b", key


def test_an_inbox_key_names_its_sender():
    assert inbox_sender(inbox("b", "a")) == "a"
    assert inbox_sender(b"fdn:in:a:{b}") == "a"
    assert inbox_sender(requeue("b")) is None
    assert inbox_sender("fdn:in:A!:{b}") is None


def test_acl_rules_refuse_a_name_that_is_not_an_agents():
    with pytest.raises(ValueError, match="not an agent name"):
        acl_rules("a b")
    with pytest.raises(ValueError, match="not an agent name"):
        acl_rules("a*")
