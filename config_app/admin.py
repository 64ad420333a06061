"""Per-key configuration history, read-only: it is written by every accepted change."""

from __future__ import annotations

from django.contrib import admin

from audit_app.admin_mixins import ReadOnlyModelAdmin
from config_app.models import ConfigHistory


@admin.register(ConfigHistory)
class ConfigHistoryAdmin(ReadOnlyModelAdmin):
    list_display = ("changed_at", "config_key", "old_value", "new_value", "changed_by")
    list_filter = ("changed_by", "changed_at")
    search_fields = ("config_key", "changed_by")
    date_hierarchy = "changed_at"
    list_per_page = 100
