"""The client's one exception tree.

    FoundationError
     ├── InvalidArgument         a bad argument to a call (also a ValueError)
     ├── MalformedMessage        an entry, answer or notice not in the protocol's format (also
     │                           a ValueError): a foreign producer, a truncated write, a forgery
     ├── ProtocolMismatch        the site serves no protocol version this client speaks
     ├── TransportError          the site cannot be reached over HTTP, or did not answer in time
     ├── ConfigurationError      a FOUNDATION_* variable is missing or malformed
     ├── SealingError            a sealed value cannot be opened (wrong key, tampered)
     ├── MessagingError
     │    ├── MessageRejected    refused at send: not JSON, too big, no receiver
     │    ├── RequestTimeout     no reply to a request in time
     │    └── WireUnavailable    Redis could not be reached or refused the command
     └── SecretError             carries the secret's name
          ├── SecretNotFound     no such secret (or no such version)
          ├── SecretAccessDenied the agent's token is unknown, or it has no grant
          └── SecretUnavailable  the foundation or its backend cannot answer now, or its
                                 answer was refused (forged, replayed, rolled back)

Each subsystem adds its branch here (secrets, messaging, ...), so an agent can catch
``FoundationError`` to handle anything the foundation raises; where a builtin is the convention
(``ValueError`` for a bad argument or malformed data), the error is both
(``client/tests/test_errors.py`` holds every ``raise`` of the package to it). Messages carry
context (which variable, which secret name) and never a secret value.
"""

from __future__ import annotations


class FoundationError(Exception):
    """Base of every error the client raises."""


class InvalidArgument(FoundationError, ValueError):
    """A bad argument to a call: nothing was done."""


class MalformedMessage(FoundationError, ValueError):
    """Data that is not in the protocol's format (an inbox entry, an event, a secret answer, a
    notice): a foreign producer, a truncated write, a forgery."""


class ProtocolMismatch(FoundationError):
    """The site serves a range of protocol versions that does not hold this client's."""

    def __init__(self, client: int, site: tuple[int, int]) -> None:
        super().__init__(
            f"this client speaks protocol version {client}; the site serves versions "
            f"{site[0]} to {site[1]}: upgrade the "
            + ("client (foundation_client)" if client < site[0] else "site")
        )
        self.client = client
        self.site = site


class TransportError(FoundationError):
    """The site could not be reached, or did not answer in time (a reason fit for a user)."""


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


class WireUnavailable(MessagingError):
    """Redis could not be reached, or refused a command (the client's redis-py error is its
    ``__cause__``)."""
