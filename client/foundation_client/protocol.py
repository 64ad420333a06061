"""The wire protocol between agents and the foundation: everything both sides must agree on.

The site (Django) imports this module and nothing else of ``foundation_client``'s private
modules; a test enforces it. What is here is the contract: change it and ``PROTOCOL_VERSION``
changes with it.

Sections: names, keys, the envelope and its one field schema, status events, the Lua scripts
both sides run, the per-agent Redis ACL, secrets (API path, rotation notices, sealed answers).
"""

from __future__ import annotations

from foundation_client._answers import (
    ANSWER_NONCE,
    ANSWER_NONCE_PATTERN,
    ANSWER_SIGNATURE_ALGORITHM,
    SecretAnswer,
    load_site_public_key,
    new_nonce,
)
from foundation_client._sealing import (
    ALGORITHM as SEALING_ALGORITHM,
)
from foundation_client._sealing import (
    generate_keypair,
    load_public_key,
    open_sealed,
    seal,
    sealing_context,
)
from foundation_client._wire import (
    AGENT_NAME,
    AGENT_NAME_PATTERN,
    SECRETS_API_PATH,
    SECRETS_ROTATION_CHANNEL,
    RotationNotice,
)

#: Bumped whenever anything in this module changes meaning on the wire.
PROTOCOL_VERSION = 2

__all__ = [
    "AGENT_NAME",
    "AGENT_NAME_PATTERN",
    "ANSWER_NONCE",
    "ANSWER_NONCE_PATTERN",
    "ANSWER_SIGNATURE_ALGORITHM",
    "PROTOCOL_VERSION",
    "SEALING_ALGORITHM",
    "SECRETS_API_PATH",
    "SECRETS_ROTATION_CHANNEL",
    "RotationNotice",
    "SecretAnswer",
    "generate_keypair",
    "load_public_key",
    "load_site_public_key",
    "new_nonce",
    "open_sealed",
    "seal",
    "sealing_context",
]
