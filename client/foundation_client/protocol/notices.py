"""The site's notices: pub/sub channels agents may subscribe to and never publish on."""

from __future__ import annotations

import json
from dataclasses import dataclass

from foundation_client._exceptions import MalformedMessage
from foundation_client.protocol.keys import NOTICES

#: Pub/sub channel on which the site announces new secret versions (name and version only).
SECRETS_ROTATION_CHANNEL = NOTICES + "secrets"


@dataclass(frozen=True)
class RotationNotice:
    """A secret got a new current version (``version`` 0: it was deleted). Never the value."""

    name: str
    version: int

    def encode(self) -> str:
        return json.dumps({"name": self.name, "version": self.version})

    @classmethod
    def decode(cls, raw: str | bytes) -> RotationNotice:
        """Parse a notice; :class:`MalformedMessage` (a ``ValueError``) if it is not one."""
        try:
            data = json.loads(raw)
        except ValueError:  # not JSON, or not UTF-8
            raise MalformedMessage("rotation notice is not JSON") from None
        if not isinstance(data, dict):
            raise MalformedMessage("rotation notice is not an object")
        name, version = data.get("name"), data.get("version")
        if not isinstance(name, str) or not isinstance(version, int):
            raise MalformedMessage("rotation notice needs a string name and an integer version")
        return cls(name=name, version=version)
