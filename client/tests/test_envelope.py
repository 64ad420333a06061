"""The envelope: one schema, encoded and decoded the same way by both sides."""

from __future__ import annotations

import dataclasses
import re

import pytest

from foundation_client import Envelope, MalformedMessage
from foundation_client.protocol import ENVELOPE_FIELDS, HEAD_FIELDS

BASE = b'"sender": "a", "receiver": "b", "type": "t", "id": "1", "payload": 1'


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "envelope is not JSON"),
        (b"[1, 2]", "envelope is not an object"),
        (b'{"id": "1", "sender": "a", "receiver": "b", "payload": 1}', "missing field: type"),
        (b'{"id": "1", "sender": "a", "receiver": "b", "type": "t"}', "missing field: payload"),
        (b"{" + BASE + b', "attempt": 0}', "field attempt is not an integer of at least 1"),
        (b"{" + BASE + b', "created_at": "yesterday"}', "field created_at is not a number"),
        (b'{"sender": "a", "receiver": "b", "type": "t", "id": "x}:y", "payload": 1}', "field id"),
        (b'{"sender": "A!", "receiver": "b", "type": "t", "id": "1", "payload": 1}', "sender"),
        (b"{" + BASE + b', "traceparent": "00-zz"}', "field traceparent is not a W3C"),
        (b"{" + BASE + b', "reply_to": "b\\n"}', "field reply_to is not an agent name"),
    ],
)
def test_an_envelope_that_is_not_one_says_why(raw, reason):
    with pytest.raises(MalformedMessage, match=re.escape(reason)):
        Envelope.from_json(raw)


def test_an_envelope_survives_the_wire_unchanged():
    envelope = Envelope(
        sender="a",
        receiver="b",
        type="t",
        payload={"text": "é \u2603", "n": [1, 2.5, None, True]},
        correlation_id="c-1",
        reply_to="a",
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    again = Envelope.from_entry({b"e": envelope.to_json()})
    assert again == envelope
    assert again.payload_bytes() == '{"text":"é \u2603","n":[1,2.5,null,true]}'.encode()


def test_the_trace_is_carried_through_a_retry():
    envelope = Envelope(
        sender="a",
        receiver="b",
        type="t",
        payload=None,
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    retry = Envelope.from_json(envelope.next_attempt().to_json())
    assert (retry.attempt, retry.traceparent, retry.id) == (2, envelope.traceparent, envelope.id)


def test_an_older_envelope_without_the_new_members_still_parses():
    envelope = Envelope.from_json(b"{" + BASE + b"}")
    assert (envelope.attempt, envelope.traceparent, envelope.correlation_id) == (1, None, None)


def test_encoding_and_decoding_derive_from_one_schema():
    members = tuple(f.name for f in dataclasses.fields(Envelope) if f.name != "payload_json")
    assert members == ENVELOPE_FIELDS
    assert set(HEAD_FIELDS) == set(ENVELOPE_FIELDS) - {"payload"}
    envelope = Envelope(sender="a", receiver="b", type="t", payload=[1])
    assert set(Envelope.from_json(envelope.to_json()).head()) == set(HEAD_FIELDS)


def test_an_inbox_entry_has_one_field():
    with pytest.raises(MalformedMessage, match="exactly one field"):
        Envelope.from_entry({b"id": b"1", b"sender": b"a"})
