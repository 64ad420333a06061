"""Helpers to write audit rows at a chosen time (only tests may pick ``created_at``)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from audit_app.models import AuditLog


def failures(actor: str, count: int, minutes_ago: float = 1, **fields: object) -> None:
    when = timezone.now() - timedelta(minutes=minutes_ago)
    AuditLog.objects.bulk_create(
        AuditLog(
            event_type="auth.login",
            actor=actor,
            action="login",
            success=False,
            created_at=when,
            **fields,
        )
        for _ in range(count)
    )
