"""A rotator that fails, for the tests of failed rotations (named in SECRETS_ROTATORS)."""

from __future__ import annotations

from typing import Any


def broken_rotator(secret: Any) -> str:
    raise ConnectionError("provider API down")
