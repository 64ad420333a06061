"""Shared-state snapshots and metric samples, read-only: the system writes them."""

from __future__ import annotations

from django.contrib import admin

from audit_app.admin_mixins import ReadOnlyModelAdmin
from telemetry_app.models import Metric, SystemState


@admin.register(SystemState)
class SystemStateAdmin(ReadOnlyModelAdmin):
    list_display = ("state_key", "updated_at")
    search_fields = ("state_key",)


@admin.register(Metric)
class MetricAdmin(ReadOnlyModelAdmin):
    list_display = ("timestamp", "metric_name", "metric_value", "unit", "tags")
    list_filter = ("metric_name", "unit", "timestamp")
    search_fields = ("metric_name",)
    date_hierarchy = "timestamp"
    list_per_page = 100
    show_full_result_count = False
