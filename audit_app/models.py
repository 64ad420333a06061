"""The audit log (the seed's ``audit_logs``) and the ``suspicious_activities`` view over it."""

from __future__ import annotations

from typing import Any, NoReturn

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.functions import Now

from audit_app.exceptions import AppendOnlyError


class AuditLogQuerySet(models.QuerySet["AuditLog"]):
    """Bulk changes are refused in Python too; PostgreSQL also refuses them with a trigger."""

    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("UPDATE")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("DELETE")


#: The event types the code writes, as the audit list's event filter suggests them.
EVENT_TYPES = (
    "admin.change",
    "admin.rq",
    "agents.create",
    "agents.grant",
    "agents.provision",
    "agents.public_key",
    "agents.token",
    "auth.account",
    "auth.change",
    "auth.login",
    "auth.logout",
    "auth.unlock",
    "db.grant",
    "messaging.replay",
    "messaging.retention",
    "messaging.upgrade",
    "secrets.delete",
    "secrets.master_key",
    "secrets.read",
    "secrets.reconcile",
    "secrets.rollback",
    "secrets.rotate",
    "secrets.rotation_due",
    "secrets.write",
)


class AuditLog(models.Model):
    """One audited event. Rows are written by ``audit_app.services.record`` and never changed."""

    id = models.AutoField(primary_key=True)
    event_type = models.CharField(max_length=50)
    actor = models.CharField(max_length=100, null=True, blank=True)
    resource = models.CharField(max_length=200, null=True, blank=True)
    action = models.CharField(max_length=50, null=True, blank=True)
    ip_address = models.CharField(max_length=45, null=True, blank=True)
    user_agent = models.TextField(null=True, blank=True)
    success = models.BooleanField(null=True)
    error_message = models.TextField(null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(db_default=Now())

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        db_table = "audit_logs"
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["event_type", "created_at"], name="idx_audit_logs_event"),
            models.Index(fields=["actor"], name="idx_audit_logs_actor"),
            # The audit list at any size (docs/architecture.md, "Audit"): its order; an actor's,
            # an address's and a resource's rows newest first; and the failures of the last
            # hour, which Suspicious activity reads, in a partial index of failures only.
            models.Index(fields=["created_at", "id"], name="idx_audit_logs_created"),
            models.Index(fields=["actor", "created_at"], name="idx_audit_logs_actor_time"),
            models.Index(fields=["ip_address", "created_at"], name="idx_audit_logs_address"),
            models.Index(fields=["resource", "created_at"], name="idx_audit_logs_resource"),
            models.Index(
                fields=["created_at"],
                name="idx_audit_logs_failures",
                condition=models.Q(success=False),
            ),
        ]

    def __str__(self) -> str:
        outcome = {True: "ok", False: "failed", None: "-"}[self.success]
        return f"{self.event_type} {self.action or ''} by {self.actor or '?'}: {outcome}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("UPDATE")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("DELETE")


class SuspiciousActivity(models.Model):
    """A row of the ``suspicious_activities`` view: an actor, from one address, with >= 5
    failures in the last hour, rate-limited ones included.

    The view is created by migrations ``audit_app.0002`` and ``0004`` for each database vendor;
    this model only reads it.
    """

    id = models.CharField(max_length=200, primary_key=True)  # actor @ address
    actor = models.CharField(max_length=100, null=True)
    ip_address = models.CharField(max_length=45, null=True)
    # Rows, and what a rate limit refused without a row of its own (its summary row's count).
    failed_attempts = models.BigIntegerField()
    last_attempt = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "suspicious_activities"
        verbose_name = "suspicious activity"
        verbose_name_plural = "suspicious activity"
        ordering = ["-failed_attempts", "-last_attempt"]

    def __str__(self) -> str:
        return f"{self.actor}: {self.failed_attempts} failures"
