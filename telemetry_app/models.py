"""Shared-state snapshots (``system_state``) and metric samples (``metrics``)."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.functions import Now


class SystemState(models.Model):
    id = models.AutoField(primary_key=True)
    state_key = models.CharField(max_length=100, unique=True)
    state_value = models.JSONField(encoder=DjangoJSONEncoder)
    updated_at = models.DateTimeField(db_default=Now(), auto_now=True)

    class Meta:
        db_table = "system_state"
        verbose_name = "system state"
        verbose_name_plural = "system state"
        ordering = ["state_key"]

    def __str__(self) -> str:
        return self.state_key


class Metric(models.Model):
    """One sample. On TimescaleDB the table is a hypertable keyed by (id, timestamp)."""

    id = models.AutoField(primary_key=True)
    metric_name = models.CharField(max_length=100)
    metric_value = models.DecimalField(max_digits=15, decimal_places=4)
    unit = models.CharField(max_length=20, null=True, blank=True)
    tags = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    timestamp = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "metrics"
        ordering = ["-timestamp"]
        indexes = [
            models.Index(fields=["metric_name", "-timestamp"], name="idx_metrics_name_time"),
        ]

    def __str__(self) -> str:
        return f"{self.metric_name}={self.metric_value}{self.unit or ''}"
