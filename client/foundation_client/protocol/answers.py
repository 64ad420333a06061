"""Signed secret answers: the body of ``GET /api/v1/secrets/<name>``, defined once for both sides.

Sealing alone proves nothing about who answered: anyone holding an agent's *public* key can seal a
value for it, and an answer captured once could be served again later. So the site signs every
answer with its Ed25519 key, over the fields that make it the answer to one request: the random
nonce the agent sent with that request, the agent's name, the secret's name, the version, and the
sealed ciphertext (or the value, for an agent that gets plain values). An agent that pins the
site's public key (``FOUNDATION_SITE_PUBLIC_KEY``) accepts nothing else.

The signed bytes, :meth:`SecretAnswer.signed_bytes` (the one definition of the layout), are the
domain tag ``foundation-secret-answer-v1``, then each of these fields as a 4-byte big-endian length
followed by its UTF-8 bytes::

    nonce, agent, name, version (decimal), kind ("sealed" or "value"),
    then for "sealed": alg, epk, nonce, ciphertext  (the envelope's text exactly as sent)
         for "value":  value

A sealed answer is signed over its ciphertext, never its plaintext: the signature crosses the
network in clear, and a signature over the plaintext would let anyone who sees it test guesses of a
low-entropy value against the site's public key. A plain value is signed as it is: it crosses in
clear beside its signature anyway.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from foundation_client._exceptions import InvalidArgument, MalformedMessage

ANSWER_SIGNATURE_ALGORITHM = "Ed25519"
#: What the site accepts as a request nonce (``?nonce=``); :func:`new_nonce` makes 22 characters.
ANSWER_NONCE_PATTERN = r"^[A-Za-z0-9_-]{16,128}$"
ANSWER_NONCE = re.compile(ANSWER_NONCE_PATTERN)

_DOMAIN = b"foundation-secret-answer-v1"
_SEALED_FIELDS = ("alg", "epk", "nonce", "ciphertext")


def new_nonce() -> str:
    """A fresh request nonce: 128 random bits in URL-safe base64."""
    return secrets.token_urlsafe(16)


def load_site_public_key(text: str) -> Ed25519PublicKey:
    """Parse a site public key: 32 bytes of Ed25519 public key in URL-safe base64."""
    try:
        return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(text.strip()))
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument(
            "a site public key is 32 bytes of Ed25519 in URL-safe base64"
        ) from exc


def _field(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack(">I", len(raw)) + raw


@dataclass(frozen=True, kw_only=True)
class SecretAnswer:
    """One answer to a secret read: exactly one of ``sealed`` and ``value``, and the signature.

    ``agent`` and ``nonce`` are empty in answers from a site older than signed answers (and
    ``nonce`` when the request carried none); such answers are never accepted by a pinning agent.
    """

    agent: str
    name: str
    version: int
    nonce: str
    sealed: Mapping[str, str] | None = None
    value: str | None = None
    #: The Ed25519 signature over :meth:`signed_bytes`, URL-safe base64; None when unsigned.
    signature: str | None = None

    def __post_init__(self) -> None:
        if (self.sealed is None) == (self.value is None):
            raise MalformedMessage("an answer carries exactly one of sealed and value")

    def signed_bytes(self) -> bytes:
        """The bytes the site signs: the layout in the module docstring."""
        if self.sealed is not None:
            payload = ["sealed", *(self.sealed[field] for field in _SEALED_FIELDS)]
        else:
            assert self.value is not None  # __post_init__ guarantees one of the two
            payload = ["value", self.value]
        fields = [self.nonce, self.agent, self.name, str(self.version), *payload]
        return _DOMAIN + b"".join(_field(text) for text in fields)

    def signed_with(self, key: Ed25519PrivateKey) -> SecretAnswer:
        """This answer with its signature by ``key`` (the site's)."""
        signature = base64.urlsafe_b64encode(key.sign(self.signed_bytes())).decode("ascii")
        return replace(self, signature=signature)

    def verify(self, keys: Iterable[Ed25519PublicKey]) -> bool:
        """Whether the signature is by one of ``keys`` over exactly these fields."""
        if self.signature is None:
            return False
        try:
            signature = base64.urlsafe_b64decode(self.signature)
        except (binascii.Error, ValueError):
            return False
        signed = self.signed_bytes()
        for key in keys:
            try:
                key.verify(signature, signed)
            except InvalidSignature:
                continue
            return True
        return False

    def to_body(self) -> dict[str, Any]:
        """The JSON body the site sends."""
        body: dict[str, Any] = {
            "agent": self.agent,
            "name": self.name,
            "version": self.version,
            "nonce": self.nonce,
        }
        if self.sealed is not None:
            body["sealed"] = dict(self.sealed)
        else:
            body["value"] = self.value
        if self.signature is not None:
            body["signature"] = {"alg": ANSWER_SIGNATURE_ALGORITHM, "sig": self.signature}
        return body

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> SecretAnswer:
        """Parse the JSON body an agent received; :class:`MalformedMessage` (a ``ValueError``)
        on anything malformed."""
        name, version = body.get("name"), body.get("version")
        agent, nonce = body.get("agent", ""), body.get("nonce", "")
        if not isinstance(name, str) or not isinstance(agent, str) or not isinstance(nonce, str):
            raise MalformedMessage("name, agent and nonce must be strings")
        if not isinstance(version, int) or isinstance(version, bool):
            raise MalformedMessage("version must be an integer")
        sealed, value = body.get("sealed"), body.get("value")
        if sealed is not None:
            if not isinstance(sealed, Mapping) or not all(
                isinstance(sealed.get(field), str) for field in _SEALED_FIELDS
            ):
                raise MalformedMessage(f"sealed must carry {', '.join(_SEALED_FIELDS)} as strings")
            # Only the signed fields are kept: nothing unsigned reaches open_sealed.
            sealed = {field: sealed[field] for field in _SEALED_FIELDS}
        elif not isinstance(value, str):
            raise MalformedMessage("an answer carries sealed or a string value")
        signature = body.get("signature")
        if signature is not None:
            if (
                not isinstance(signature, Mapping)
                or signature.get("alg") != ANSWER_SIGNATURE_ALGORITHM
                or not isinstance(signature.get("sig"), str)
            ):
                raise MalformedMessage(f"signature must be {ANSWER_SIGNATURE_ALGORITHM} with sig")
            signature = signature["sig"]
        return cls(
            agent=agent,
            name=name,
            version=version,
            nonce=nonce,
            sealed=sealed,
            value=None if sealed is not None else value,
            signature=signature,
        )
