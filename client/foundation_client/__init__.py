"""foundation_client: what an agent imports to use the foundation. It never imports Django."""

from __future__ import annotations

from foundation_client._config import ClientSettings
from foundation_client._envelope import Envelope, MalformedMessage
from foundation_client._exceptions import (
    ConfigurationError,
    FoundationError,
    MessageRejected,
    MessagingError,
    RequestTimeout,
    SealingError,
    SecretAccessDenied,
    SecretError,
    SecretNotFound,
    SecretUnavailable,
)
from foundation_client._http import AiohttpTransport, Transport, TransportError
from foundation_client._messaging import Messaging, MessagingConfig, trim_stream
from foundation_client._sealing import generate_keypair
from foundation_client._secrets import SecretsClient
from foundation_client._wire import RotationNotice

__version__ = "0.1.0"

__all__ = [
    "AiohttpTransport",
    "ClientSettings",
    "ConfigurationError",
    "Envelope",
    "FoundationError",
    "MalformedMessage",
    "MessageRejected",
    "Messaging",
    "MessagingConfig",
    "MessagingError",
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
    "__version__",
    "generate_keypair",
    "trim_stream",
]
