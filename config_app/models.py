"""Per-key configuration history (``config_history``)."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.functions import Now


class ConfigHistory(models.Model):
    id = models.AutoField(primary_key=True)
    config_key = models.CharField(max_length=200, null=True, blank=True)
    old_value = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    new_value = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    changed_by = models.CharField(max_length=100, null=True, blank=True)
    changed_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "config_history"
        verbose_name = "config change"
        verbose_name_plural = "config history"
        ordering = ["-changed_at", "-id"]
        indexes = [
            models.Index(fields=["config_key", "-changed_at"], name="idx_config_history_key"),
        ]

    def __str__(self) -> str:
        return f"{self.config_key} by {self.changed_by}"
