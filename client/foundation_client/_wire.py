"""Wire formats shared by the site and the client: one definition, imported by both sides."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

#: Agent names: plain tokens (they name streams and audit actors, and need no escaping).
AGENT_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}\Z"
AGENT_NAME = re.compile(AGENT_NAME_PATTERN)

SECRETS_API_PATH = "/api/v1/secrets/"
#: Pub/sub channel on which the site announces new secret versions (name and version only).
SECRETS_ROTATION_CHANNEL = "fdn:sys:notices:secrets"


@dataclass(frozen=True)
class RotationNotice:
    """A secret got a new current version (``version`` 0: it was deleted). Never the value."""

    name: str
    version: int

    def encode(self) -> str:
        return json.dumps({"name": self.name, "version": self.version})

    @classmethod
    def decode(cls, raw: str | bytes) -> RotationNotice:
        """Parse a notice; raises ValueError on anything malformed."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("rotation notice is not an object")
        name, version = data.get("name"), data.get("version")
        if not isinstance(name, str) or not isinstance(version, int):
            raise ValueError("rotation notice needs a string name and an integer version")
        return cls(name=name, version=version)
