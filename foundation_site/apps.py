from __future__ import annotations

from django.apps import AppConfig


class SiteConfig(AppConfig):
    """The composition root as an app: its management commands, and what it wires at start."""

    name = "foundation_site"
    verbose_name = "Site"

    def ready(self) -> None:
        from foundation_site import auth_backends

        auth_backends.connect()
