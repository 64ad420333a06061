"""SecretAnswer: the signed layout both sides share, its body, and what does not verify."""

from __future__ import annotations

import base64
import dataclasses
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from foundation_client.protocol import ANSWER_NONCE, ANSWER_SIGNATURE_ALGORITHM, SecretAnswer
from foundation_client.protocol.answers import load_site_public_key, new_nonce

KEY = Ed25519PrivateKey.generate()
SEALED = {
    "alg": "X25519-HKDF-SHA256-AES256GCM",
    "epk": "RVBL",
    "nonce": "Tk9O",
    "ciphertext": "Q1Q=",
}


def sealed_answer(**changes: Any) -> SecretAnswer:
    fields: dict[str, Any] = {
        "agent": "ai_manager",
        "name": "db/password",
        "version": 12,
        "nonce": "n" * 22,
    }
    return SecretAnswer(**(fields | {"sealed": SEALED} | changes))


def test_the_signed_bytes_follow_the_documented_layout():
    def field(text: str) -> bytes:
        return struct.pack(">I", len(text.encode())) + text.encode()

    expected = b"foundation-secret-answer-v1" + b"".join(
        field(text)
        for text in ["n" * 22, "ai_manager", "db/password", "12", "sealed", *SEALED.values()]
    )
    assert sealed_answer().signed_bytes() == expected
    plain = sealed_answer(sealed=None, value="pä55")
    assert plain.signed_bytes().endswith(field("value") + field("pä55"))


def test_length_prefixes_keep_neighbouring_fields_apart():
    one = sealed_answer(agent="ab", name="c")
    two = sealed_answer(agent="a", name="bc")
    assert one.signed_bytes() != two.signed_bytes()


def test_a_signed_answer_verifies_with_the_site_key_and_no_other():
    answer = sealed_answer().signed_with(KEY)
    assert answer.verify([KEY.public_key()])
    other = Ed25519PrivateKey.generate().public_key()
    assert not answer.verify([other])
    assert answer.verify([other, KEY.public_key()])  # several keys pinned while one rotates
    assert not answer.verify([])


@pytest.mark.parametrize(
    "change",
    [
        {"agent": "other"},
        {"name": "db/other"},
        {"version": 13},
        {"nonce": "m" * 22},
        {"sealed": SEALED | {"ciphertext": "Q1U="}},
        {"sealed": SEALED | {"epk": "RVBM"}},
        {"sealed": None, "value": "plain"},
    ],
)
def test_changing_any_signed_field_breaks_the_signature(change):
    signature = sealed_answer().signed_with(KEY).signature
    altered = dataclasses.replace(sealed_answer(**change), signature=signature)
    assert not altered.verify([KEY.public_key()])


def test_an_unsigned_or_garbled_signature_does_not_verify():
    assert not sealed_answer().verify([KEY.public_key()])
    assert not sealed_answer(signature="!!not base64!!").verify([KEY.public_key()])
    assert not sealed_answer(signature="AAAA").verify([KEY.public_key()])


def test_the_body_round_trips():
    for answer in (sealed_answer(), sealed_answer(sealed=None, value="v")):
        signed = answer.signed_with(KEY)
        body = signed.to_body()
        assert body["signature"] == {"alg": ANSWER_SIGNATURE_ALGORITHM, "sig": signed.signature}
        assert SecretAnswer.from_body(body) == signed


def test_an_answer_from_an_older_site_parses_unsigned():
    answer = SecretAnswer.from_body({"name": "k", "version": 1, "value": "v"})
    assert (answer.agent, answer.nonce, answer.signature) == ("", "", None)


def test_only_the_signed_fields_of_a_sealed_value_are_kept():
    body = sealed_answer().to_body()
    body["sealed"]["extra"] = "unsigned"
    assert SecretAnswer.from_body(body).sealed == SEALED


@pytest.mark.parametrize(
    "body",
    [
        {"version": 1, "value": "v"},
        {"name": "k", "version": "1", "value": "v"},
        {"name": "k", "version": True, "value": "v"},
        {"name": "k", "version": 1},
        {"name": "k", "version": 1, "value": 5},
        {"name": "k", "version": 1, "sealed": "text"},
        {"name": "k", "version": 1, "sealed": {"alg": "x", "epk": "y", "nonce": "z"}},
        {"name": "k", "version": 1, "value": "v", "agent": 3},
        {"name": "k", "version": 1, "value": "v", "signature": "bare"},
        {"name": "k", "version": 1, "value": "v", "signature": {"alg": "HS256", "sig": "x"}},
    ],
)
def test_a_malformed_body_is_refused(body):
    with pytest.raises(ValueError, match=r"must|carries"):
        SecretAnswer.from_body(body)


def test_an_answer_carries_exactly_one_of_sealed_and_value():
    with pytest.raises(ValueError, match="exactly one"):
        sealed_answer(value="both")
    with pytest.raises(ValueError, match="exactly one"):
        sealed_answer(sealed=None)


def test_nonces_are_fresh_and_match_the_pattern():
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(ANSWER_NONCE.match(nonce) for nonce in nonces)


def test_a_site_public_key_is_32_bytes_of_ed25519():
    raw = KEY.public_key().public_bytes_raw()
    assert load_site_public_key(base64.urlsafe_b64encode(raw).decode()) == KEY.public_key()
    for bad in ["", "short", "!!!!", base64.urlsafe_b64encode(b"x" * 31).decode()]:
        with pytest.raises(ValueError, match="32 bytes"):
            load_site_public_key(bad)
