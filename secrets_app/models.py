"""Secret metadata (the seed's ``secrets_metadata``). Values never live in this database."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models
from django.db.models.functions import Now


class SecretMetadata(models.Model):
    id = models.AutoField(primary_key=True)
    secret_name = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=50, null=True, blank=True)
    storage_backend = models.CharField(max_length=50, null=True, blank=True)
    last_rotated = models.DateTimeField(null=True, blank=True)
    rotation_policy_days = models.IntegerField(null=True, blank=True, default=90, db_default=90)
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now(), auto_now=True)

    class Meta:
        db_table = "secrets_metadata"
        verbose_name = "secret"
        ordering = ["secret_name"]
        indexes = [models.Index(fields=["provider"], name="idx_secrets_provider")]

    def __str__(self) -> str:
        return self.secret_name

    def rotation_due_at(self) -> datetime | None:
        """When the rotation policy next asks for a new value (None: no policy)."""
        if not self.rotation_policy_days:
            return None
        since = self.last_rotated or self.created_at
        if not isinstance(since, datetime):
            return None
        return since + timedelta(days=self.rotation_policy_days)
