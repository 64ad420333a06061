from __future__ import annotations

import pytest

from foundation_client import SealingError, generate_keypair
from foundation_client.protocol import sealing_context
from foundation_client.protocol.sealing import ALGORITHM, load_public_key, open_sealed, seal


def test_a_sealed_value_opens_with_the_recipients_key():
    private, public = generate_keypair()
    envelope = seal(b"s3cret", load_public_key(public), b"ctx")
    assert envelope["alg"] == ALGORITHM
    assert b"s3cret" not in str(envelope).encode()
    assert open_sealed(envelope, private, b"ctx") == b"s3cret"


def test_it_does_not_open_with_any_other_key():
    _, public = generate_keypair()
    envelope = seal(b"s3cret", load_public_key(public), b"ctx")
    for _ in range(3):
        other, _ = generate_keypair()
        with pytest.raises(SealingError):
            open_sealed(envelope, other, b"ctx")


def test_each_seal_uses_a_fresh_ephemeral_key():
    _, public = generate_keypair()
    one = seal(b"same", load_public_key(public), b"ctx")
    two = seal(b"same", load_public_key(public), b"ctx")
    assert one["epk"] != two["epk"]
    assert one["ciphertext"] != two["ciphertext"]


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "epk"])
def test_a_tampered_envelope_is_refused(field):
    private, public = generate_keypair()
    envelope = seal(b"s3cret", load_public_key(public), b"ctx")
    raw = bytearray(envelope[field].encode())
    raw[2] = ord("A") if raw[2] != ord("A") else ord("B")
    envelope[field] = raw.decode()
    with pytest.raises(SealingError):
        open_sealed(envelope, private, b"ctx")


def test_the_context_binds_the_value_to_its_secret_and_version():
    private, public = generate_keypair()
    envelope = seal(b"v", load_public_key(public), sealing_context("a", 1))
    with pytest.raises(SealingError):
        open_sealed(envelope, private, sealing_context("b", 1))
    with pytest.raises(SealingError):
        open_sealed(envelope, private, sealing_context("a", 2))


def test_an_unknown_algorithm_is_refused():
    private, public = generate_keypair()
    envelope = seal(b"v", load_public_key(public), b"ctx") | {"alg": "ROT13"}
    with pytest.raises(SealingError, match="ROT13"):
        open_sealed(envelope, private, b"ctx")


@pytest.mark.parametrize("bad", ["", "short", "!!!!", "A" * 60])
def test_a_malformed_public_key_is_refused(bad):
    with pytest.raises(ValueError, match="32 bytes"):
        load_public_key(bad)


def test_anyone_with_the_public_key_can_seal_so_sealing_proves_no_origin():
    # Why answers are signed as well (test_answers.py, test_secrets_client.py): a value sealed by
    # anyone who knows the agent's public key opens just as the site's would.
    private, public = generate_keypair()
    forged = seal(b"attacker-chosen", load_public_key(public), sealing_context("k", 1))
    assert open_sealed(forged, private, sealing_context("k", 1)) == b"attacker-chosen"
