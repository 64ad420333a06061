"""The site's Ed25519 signing key, with which every secret answer is signed.

The private key is ``settings.FOUNDATION_SITE_SIGNING_KEY`` (a 32-byte seed); agents pin the public
key as ``FOUNDATION_SITE_PUBLIC_KEY`` and then accept only answers the site signed for their own
request. The signed layout is the client's (``foundation_client.protocol.SecretAnswer``).
"""

from __future__ import annotations

import base64
import functools

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from foundation_client.protocol import SecretAnswer


@functools.lru_cache(maxsize=4)
def _key(seed: bytes) -> Ed25519PrivateKey:
    # Keyed by the seed, so that a test (or a reload) with another key gets another object.
    return Ed25519PrivateKey.from_private_bytes(seed)


def sign(answer: SecretAnswer) -> SecretAnswer:
    """``answer`` signed with the site's key."""
    return answer.signed_with(_key(settings.FOUNDATION_SITE_SIGNING_KEY))


def site_public_key() -> str:
    """The site's public key in URL-safe base64: what an agent pins as FOUNDATION_SITE_PUBLIC_KEY
    (``create_agent`` prints it)."""
    raw = (
        _key(settings.FOUNDATION_SITE_SIGNING_KEY)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.urlsafe_b64encode(raw).decode("ascii")
