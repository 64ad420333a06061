"""Envelope encryption for the local backend.

Each secret version gets its own random 256-bit data key (DEK). The value is encrypted with the
DEK (AES-256-GCM, the secret's name and version as associated data, so ciphertexts cannot be
swapped between rows); the DEK is wrapped with the master key (AES-256-GCM again). Rotating the
master key only re-wraps DEKs: values are never decrypted to disk.

A keyring holds the current master key and, during a master-key rotation, the previous ones, each
known by a short id (a hash of the key) that every row records.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from secrets_app.exceptions import MasterKeyError


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"foundation-master-key-id:" + key).hexdigest()[:16]


@dataclass(frozen=True)
class Sealed:
    nonce: bytes
    ciphertext: bytes
    wrapped_key: bytes
    key_nonce: bytes
    key_id: str


class Keyring:
    def __init__(self, current: bytes, previous: Iterable[bytes] = ()) -> None:
        if len(current) != 32:
            raise ValueError("the master key must be 32 bytes")
        self.current = current
        self.current_id = key_id(current)
        self._keys = {key_id(k): k for k in (*previous, current)}

    def __repr__(self) -> str:
        return f"Keyring(current={self.current_id}, known={sorted(self._keys)})"

    def key(self, wanted_id: str) -> bytes:
        try:
            return self._keys[wanted_id]
        except KeyError:
            raise MasterKeyError(
                f"a value is wrapped by master key {wanted_id}, which this process does not have "
                "(set it in FOUNDATION_PREVIOUS_MASTER_KEYS)"
            ) from None

    def _unwrap(self, sealed: Sealed, aad: bytes) -> bytes:
        """The data key of ``sealed``, unwrapped by the master key that wrapped it."""
        try:
            return AESGCM(self.key(sealed.key_id)).decrypt(
                sealed.key_nonce, sealed.wrapped_key, b"dek:" + aad
            )
        except InvalidTag:
            raise MasterKeyError(
                "a data key failed authentication (altered or misplaced)"
            ) from None

    def encrypt(self, plaintext: bytes, aad: bytes) -> Sealed:
        dek = AESGCM.generate_key(bit_length=256)
        nonce, key_nonce = os.urandom(12), os.urandom(12)
        ciphertext = AESGCM(dek).encrypt(nonce, plaintext, aad)
        wrapped = AESGCM(self.current).encrypt(key_nonce, dek, b"dek:" + aad)
        return Sealed(nonce, ciphertext, wrapped, key_nonce, self.current_id)

    def decrypt(self, sealed: Sealed, aad: bytes) -> bytes:
        dek = self._unwrap(sealed, aad)
        try:
            return AESGCM(dek).decrypt(sealed.nonce, sealed.ciphertext, aad)
        except InvalidTag:
            raise MasterKeyError(
                "a local value failed authentication (altered or misplaced)"
            ) from None

    def rewrap(self, sealed: Sealed, aad: bytes) -> Sealed:
        """The same ciphertext with its DEK wrapped by the current master key."""
        dek = self._unwrap(sealed, aad)
        key_nonce = os.urandom(12)
        wrapped = AESGCM(self.current).encrypt(key_nonce, dek, b"dek:" + aad)
        return Sealed(sealed.nonce, sealed.ciphertext, wrapped, key_nonce, self.current_id)
