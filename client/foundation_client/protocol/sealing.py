"""Sealed delivery: a secret value encrypted to one agent's X25519 public key.

The site seals with a fresh ephemeral key pair per response: ``X25519`` agreement with the agent's
public key, ``HKDF-SHA256`` (the info binds both public keys) to a 256-bit key, then ``AES-256-GCM``
with the secret's name and version as associated data, so a sealed value cannot be replayed as
another secret. Only the holder of the private key can open it; proxies and logs see ciphertext.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from foundation_client._exceptions import InvalidArgument, SealingError

ALGORITHM = "X25519-HKDF-SHA256-AES256GCM"
_INFO = b"foundation-sealed-secret-v1"
_RAW = serialization.Encoding.Raw
_RAW_PUBLIC = serialization.PublicFormat.Raw


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode("ascii"))


def generate_keypair() -> tuple[str, str]:
    """A new (private, public) X25519 key pair, each 32 bytes in URL-safe base64."""
    private = X25519PrivateKey.generate()
    private_raw = private.private_bytes(
        _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return _b64(private_raw), _b64(private.public_key().public_bytes(_RAW, _RAW_PUBLIC))


def load_public_key(text: str) -> bytes:
    """Validate a URL-safe base64 X25519 public key and return its 32 bytes."""
    try:
        raw = _unb64(text.strip())
        X25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise InvalidArgument("an X25519 public key is 32 bytes in URL-safe base64") from exc
    return raw


def _derive(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=_INFO + ephemeral_public + recipient_public,
    )
    return hkdf.derive(shared)


def seal(plaintext: bytes | bytearray, recipient_public: bytes, context: bytes) -> dict[str, str]:
    """Encrypt ``plaintext`` so that only the recipient's private key opens it."""
    recipient = X25519PublicKey.from_public_bytes(recipient_public)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes(_RAW, _RAW_PUBLIC)
    key = _derive(ephemeral.exchange(recipient), ephemeral_public, recipient_public)
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, context)
    return {
        "alg": ALGORITHM,
        "epk": _b64(ephemeral_public),
        "nonce": _b64(nonce),
        "ciphertext": _b64(ciphertext),
    }


def open_sealed(envelope: dict[str, Any], private_key: str | bytes, context: bytes) -> bytes:
    """Decrypt an envelope made by :func:`seal`; raises :class:`SealingError` otherwise."""
    try:
        if envelope.get("alg") != ALGORITHM:
            raise SealingError(f"unknown sealing algorithm {envelope.get('alg')!r}")
        raw_private = _unb64(private_key) if isinstance(private_key, str) else private_key
        private = X25519PrivateKey.from_private_bytes(raw_private)
        own_public = private.public_key().public_bytes(_RAW, _RAW_PUBLIC)
        ephemeral_public = _unb64(envelope["epk"])
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
        key = _derive(shared, ephemeral_public, own_public)
        return AESGCM(key).decrypt(
            _unb64(envelope["nonce"]), _unb64(envelope["ciphertext"]), context
        )
    except SealingError:
        raise
    except (InvalidTag, KeyError, TypeError, ValueError) as exc:
        raise SealingError(f"sealed value cannot be opened ({type(exc).__name__})") from None


def sealing_context(name: str, version: int) -> bytes:
    """The associated data that binds a sealed value to one secret version."""
    return f"secret:{name}:v{version}".encode()
