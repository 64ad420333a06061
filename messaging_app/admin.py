"""Messaging in the admin: the message log, conversations, dead letters with replay, replay of a
time range, and stream health. Replays run as RQ jobs that take ids, never payloads, and are
audited with the admin who asked.

The message log grows by millions of rows an hour under load, so every query its pages run is
served by an index and bounded (docs/messaging.md, "The message log at scale"): filters take
exact values instead of listing a column's values with DISTINCT over the table, search is exact on
ids, the list is not counted and a page's query has a time limit, and the query string may hold
only the filters' own lookups.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_rq
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.html import format_html
from django.utils.safestring import SafeString

from agents_app.models import Agent
from audit_app import services as audit
from audit_app.admin_mixins import ReadOnlyModelAdmin
from foundation_core.admin_pages import AdminPagesMixin
from foundation_core.admin_scale import AtScaleAdmin, ExactFilter
from messaging_app import jobs, services
from messaging_app.forms import ReplayRangeForm
from messaging_app.models import MessageLog

REPLAY_PERMISSION = "messaging_app.replay_messages"
# A conversation is a handful of messages; one that is not is shown in part rather than slowly.
CONVERSATION_LIMIT = 500


class AgentFilter(ExactFilter):
    """An agent's name; the registered agents (a small table) are suggested."""

    def suggestions(self) -> list[str]:
        return list(Agent.objects.order_by("name").values_list("name", flat=True)[:1000])


class SenderFilter(AgentFilter):
    title = "sender"
    parameter_name = lookup = "sender"


class ReceiverFilter(AgentFilter):
    title = "receiver"
    parameter_name = lookup = "receiver"


class TypeFilter(ExactFilter):
    title = "type"
    parameter_name = "type"
    lookup = "message_type"


class BeforeFilter(ExactFilter):
    """Rows older than a moment: how the list reaches further back than its last page."""

    title = "created before (UTC)"
    parameter_name = "before"
    lookup = "created_at__lt"

    def clean(self, value: str) -> object:
        moment = parse_datetime(value)
        if moment is None and (day := parse_date(value)) is not None:
            moment = datetime(day.year, day.month, day.day)
        if moment is None:
            raise IncorrectLookupParameters(f"not a time: {value!r}")
        return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


@admin.register(MessageLog)
class MessageLogAdmin(AdminPagesMixin, AtScaleAdmin, ReadOnlyModelAdmin):
    list_display = (
        "created_at",
        "message_id",
        "sender",
        "receiver",
        "message_type",
        "status",
        "attempt",
        "conversation",
    )
    # Status from its choices and time from fixed ranges: neither queries the table to list
    # its options. No date_hierarchy: it lists the distinct dates of the rows.
    list_filter = (
        "status",
        "created_at",
        SenderFilter,
        ReceiverFilter,
        TypeFilter,
        BeforeFilter,
    )
    # Exact, not Django's default icontains: a substring cannot use an index.
    search_fields = ("message_id__exact", "correlation_id__exact")
    search_help_text = "An exact message id or correlation id."
    sortable_by = ("created_at",)  # the other columns have no index to sort by
    # Only the filters' own lookups: another one in a crafted query string (a substring of the
    # payload, say) would scan the table.
    filter_lookups = frozenset(
        {
            "status__exact",
            "created_at__gte",
            "created_at__lt",
            *(f.parameter_name for f in (SenderFilter, ReceiverFilter, TypeFilter, BeforeFilter)),
        }
    )

    @admin.display(description="Conversation")
    def conversation(self, obj: MessageLog) -> SafeString | str:
        if not obj.correlation_id:
            return "—"
        url = self.admin_url("conversation", obj.correlation_id)
        return format_html('<a href="{}">{}</a>', url, obj.correlation_id[:12])

    def get_urls(self) -> list[Any]:
        page = self.admin_page_path
        return [
            page("conversation/<str:correlation_id>/", self.conversation_view, "conversation"),
            page("dead-letters/", self.dead_letters_view, "dead_letters"),
            page("replay-range/", self.replay_range_view, "replay_range"),
            page("streams/", self.streams_view, "streams"),
            *super().get_urls(),
        ]

    def _require(self, request: HttpRequest, replay: bool = False) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if replay and not request.user.has_perm(REPLAY_PERMISSION):
            raise PermissionDenied

    def conversation_view(self, request: HttpRequest, correlation_id: str) -> HttpResponse:
        self._require(request)
        rows = list(
            MessageLog.objects.filter(correlation_id=correlation_id).order_by("created_at", "id")[
                : CONVERSATION_LIMIT + 1
            ]
        )
        return self.render_admin_page(
            request,
            "conversation.html",
            title=f"Conversation {correlation_id}",
            rows=rows[:CONVERSATION_LIMIT],
            more=len(rows) > CONVERSATION_LIMIT,
            limit=CONVERSATION_LIMIT,
            correlation_id=correlation_id,
        )

    def dead_letters_view(self, request: HttpRequest) -> HttpResponse:
        self._require(request)
        if request.method == "POST":
            self._require(request, replay=True)
            entry_ids = request.POST.getlist("entry_id")
            if not entry_ids:
                messages.warning(request, "Select the dead letters to replay.")
            else:
                user_id = getattr(request.user, "pk", None)
                django_rq.enqueue(jobs.replay_dead_letters, entry_ids, user_id)
                audit.record(
                    "messaging.replay",
                    request.user,
                    "dead_letters",
                    "replay_requested",
                    success=True,
                    request=request,
                    entries=entry_ids,
                )
                messages.success(request, f"Replay of {len(entry_ids)} dead letter(s) queued.")
            return HttpResponseRedirect(self.admin_url("dead_letters"))
        receiver = request.GET.get("receiver") or None
        return self.render_admin_page(
            request,
            "dead_letters.html",
            title="Dead letters",
            letters=services.dead_letters(receiver=receiver),
            receiver=receiver or "",
            can_replay=request.user.has_perm(REPLAY_PERMISSION),
        )

    def replay_range_view(self, request: HttpRequest) -> HttpResponse:
        self._require(request, replay=True)
        form = ReplayRangeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            django_rq.enqueue(
                jobs.replay_range,
                data["receiver"],
                data["start"].isoformat(),
                data["end"].isoformat(),
                getattr(request.user, "pk", None),
            )
            audit.record(
                "messaging.replay",
                request.user,
                f"agent:{data['receiver']}",
                "replay_range_requested",
                success=True,
                request=request,
                start=data["start"].isoformat(),
                end=data["end"].isoformat(),
            )
            messages.success(request, f"Replay of {data['receiver']}'s messages queued.")
            return HttpResponseRedirect(self.admin_url("changelist"))
        return self.render_admin_page(
            request, "replay_range.html", title="Replay a time range", form=form
        )

    def streams_view(self, request: HttpRequest) -> HttpResponse:
        self._require(request)
        return self.render_admin_page(
            request, "streams.html", title="Stream health", streams=services.stream_health()
        )
