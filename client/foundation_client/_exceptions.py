"""The client's one exception tree.

    FoundationError
     └── ConfigurationError      a FOUNDATION_* variable is missing or malformed

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
