"""The client's one exception tree.

    FoundationError
     ├── ConfigurationError      a FOUNDATION_* variable is missing or malformed
     ├── SealingError            a sealed value cannot be opened (wrong key, tampered)
     ├── MessagingError
     │    ├── MessageRejected    refused at send: not JSON, too big, no receiver
     │    └── RequestTimeout     no reply to a request in time
     └── SecretError             carries the secret's name
          ├── SecretNotFound     no such secret (or no such version)
          ├── SecretAccessDenied the agent's token is unknown, or it has no grant
          └── SecretUnavailable  the foundation or its backend cannot answer now, or its
                                 answer was refused (forged, replayed, rolled back)

Each subsystem adds its branch here (secrets, messaging, ...), so an agent can catch
``FoundationError`` to handle anything the foundation raises. Messages carry context (which
variable, which secret name) and never a secret value.
"""

from __future__ import annotations


class FoundationError(Exception):
    """Base of every error the client raises."""


class ConfigurationError(FoundationError):
    """A client setting is missing or malformed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class SealingError(FoundationError):
    """A sealed envelope could not be opened: another recipient's, or altered on the way."""


class SecretError(FoundationError):
    """Base of the errors about one secret; ``name`` says which."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class SecretNotFound(SecretError):
    def __init__(self, name: str) -> None:
        super().__init__(name, f"secret {name!r} does not exist")


class SecretAccessDenied(SecretError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name, f"access to secret {name!r} denied: {reason}")
        self.reason = reason


class SecretUnavailable(SecretError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name, f"secret {name!r} is unavailable: {reason}")
        self.reason = reason


class MessagingError(FoundationError):
    """Base of the messaging errors."""


class MessageRejected(MessagingError):
    """A message refused before anything was written."""


class RequestTimeout(MessagingError):
    """No reply came to a request within its timeout."""
