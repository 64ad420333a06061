"""The message log, read-only: the recorder writes it."""

from __future__ import annotations

from django.contrib import admin

from audit_app.admin_mixins import ReadOnlyModelAdmin
from messaging_app.models import MessageLog


@admin.register(MessageLog)
class MessageLogAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "message_id", "sender", "receiver", "message_type", "status")
    list_filter = ("status", "message_type", "sender", "receiver", "created_at")
    search_fields = ("message_id", "sender", "receiver")
    date_hierarchy = "created_at"
    list_per_page = 100
    show_full_result_count = False
