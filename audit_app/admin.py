"""The audit log and the suspicious-activity view in the admin, both read-only."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from audit_app.admin_mixins import ReadOnlyModelAdmin
from audit_app.models import AuditLog, SuspiciousActivity


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyModelAdmin):
    list_display = (
        "created_at",
        "event_type",
        "action",
        "actor",
        "resource",
        "success",
        "ip_address",
    )
    list_filter = ("event_type", "action", "success", "created_at")
    search_fields = ("actor", "resource", "ip_address", "error_message")
    date_hierarchy = "created_at"
    list_per_page = 100
    show_full_result_count = False


@admin.register(SuspiciousActivity)
class SuspiciousActivityAdmin(ReadOnlyModelAdmin):
    """Actors with five or more failures in the last hour, most failures first."""

    list_display = ("actor", "ip_address", "failed_attempts", "last_attempt", "audit_rows")
    list_display_links = None
    search_fields = ("actor", "ip_address")

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {"title": "Suspicious activity: five or more failures in the last hour"}
        return super().changelist_view(request, {**context, **(extra_context or {})})

    @admin.display(description="Audit rows")
    def audit_rows(self, obj: SuspiciousActivity) -> SafeString:
        url = reverse("admin:audit_app_auditlog_changelist")
        query = urlencode({"actor": obj.actor or "", "success__exact": "0"})
        return format_html('<a href="{}?{}">failures of {}</a>', url, query, obj.actor)
