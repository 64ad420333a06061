from __future__ import annotations

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit_app"
    verbose_name = "Audit"

    def ready(self) -> None:
        from audit_app import auth_changes, signals

        signals.connect()
        auth_changes.connect()
