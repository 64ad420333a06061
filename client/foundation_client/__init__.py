"""foundation_client: what an agent imports to use the foundation. It never imports Django."""

from __future__ import annotations

from foundation_client._config import ClientSettings
from foundation_client._exceptions import ConfigurationError, FoundationError

__version__ = "0.1.0"

__all__ = [
    "ClientSettings",
    "ConfigurationError",
    "FoundationError",
    "__version__",
]
