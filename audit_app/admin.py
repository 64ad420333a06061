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
from audit_app.models import EVENT_TYPES, AuditLog, SuspiciousActivity
from foundation_core.admin_scale import AtScaleAdmin, ExactFilter


class EventFilter(ExactFilter):
    title = "event"
    parameter_name = "event"
    lookup = "event_type"

    def suggestions(self) -> list[str]:
        return list(EVENT_TYPES)


class ActorFilter(ExactFilter):
    title = "actor"
    parameter_name = "actor"
    lookup = "actor"


class AddressFilter(ExactFilter):
    title = "address"
    parameter_name = "ip"
    lookup = "ip_address"


@admin.register(AuditLog)
class AuditLogAdmin(AtScaleAdmin, ReadOnlyModelAdmin):
    """The audit log at any size (5 million rows and more: it is never pruned): no filter
    lists a column's values, search is exact, the list is not counted (see
    ``foundation_core.admin_scale``)."""

    list_display = (
        "created_at",
        "event_type",
        "action",
        "actor",
        "resource",
        "success",
        "ip_address",
    )
    # Outcome and time from fixed choices; event, actor and address as exact values.
    list_filter = ("success", "created_at", EventFilter, ActorFilter, AddressFilter)
    search_fields = ("actor__exact", "resource__exact", "ip_address__exact")
    search_help_text = "An exact actor, resource (secret:prod/db, agent:ai_manager) or address."
    sortable_by = ("created_at",)
    filter_lookups = frozenset(
        {
            "success__exact",
            "created_at__gte",
            "created_at__lt",
            *(f.parameter_name or "" for f in (EventFilter, ActorFilter, AddressFilter)),
        }
    )


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
