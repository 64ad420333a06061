"""foundation_client: what an agent imports to use the foundation. It never imports Django."""

from __future__ import annotations

from foundation_client._config import ClientSettings
from foundation_client._exceptions import (
    ConfigurationError,
    FoundationError,
    InvalidArgument,
    MalformedMessage,
    MessageRejected,
    MessagingError,
    ProtocolMismatch,
    RequestTimeout,
    SealingError,
    SecretAccessDenied,
    SecretError,
    SecretNotFound,
    SecretUnavailable,
    TransportError,
    WireUnavailable,
)
from foundation_client._http import AiohttpTransport, Transport
from foundation_client._messaging import Messaging, MessagingConfig, trim_stream
from foundation_client._secrets import SecretsClient
from foundation_client.protocol import Envelope, RotationNotice
from foundation_client.protocol.sealing import generate_keypair

__version__ = "0.1.0"

__all__ = [
    "AiohttpTransport",
    "ClientSettings",
    "ConfigurationError",
    "Envelope",
    "FoundationError",
    "InvalidArgument",
    "MalformedMessage",
    "MessageRejected",
    "Messaging",
    "MessagingConfig",
    "MessagingError",
    "ProtocolMismatch",
    "RequestTimeout",
    "RotationNotice",
    "SealingError",
    "SecretAccessDenied",
    "SecretError",
    "SecretNotFound",
    "SecretUnavailable",
    "SecretsClient",
    "Transport",
    "TransportError",
    "WireUnavailable",
    "__version__",
    "generate_keypair",
    "trim_stream",
]
