"""Agent identities, grants and heartbeats arrive with the secrets issue (#3)."""

from __future__ import annotations
