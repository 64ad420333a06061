"""Messaging in the admin: the message log, conversations, dead letters with replay, replay of a
time range, and stream health. Replays run as RQ jobs that take ids, never payloads, and are
audited with the admin who asked."""

from __future__ import annotations

from typing import Any

import django_rq
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from audit_app import services as audit
from audit_app.admin_mixins import ReadOnlyModelAdmin
from messaging_app import jobs, services
from messaging_app.forms import ReplayRangeForm
from messaging_app.models import MessageLog

REPLAY_PERMISSION = "messaging_app.replay_messages"


@admin.register(MessageLog)
class MessageLogAdmin(ReadOnlyModelAdmin):
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
    list_filter = ("status", "message_type", "sender", "receiver", "created_at")
    search_fields = ("message_id", "correlation_id")
    date_hierarchy = "created_at"
    list_per_page = 100
    show_full_result_count = False

    @admin.display(description="Conversation")
    def conversation(self, obj: MessageLog) -> SafeString | str:
        if not obj.correlation_id:
            return "—"
        url = reverse("admin:messaging_conversation", args=[obj.correlation_id])
        return format_html('<a href="{}">{}</a>', url, obj.correlation_id[:12])

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "conversation/<str:correlation_id>/",
                wrap(self.conversation_view),
                name="messaging_conversation",
            ),
            path("dead-letters/", wrap(self.dead_letters_view), name="messaging_dead_letters"),
            path("replay-range/", wrap(self.replay_range_view), name="messaging_replay_range"),
            path("streams/", wrap(self.streams_view), name="messaging_streams"),
            *super().get_urls(),
        ]

    def _page(self, request: HttpRequest, template: str, **context: Any) -> TemplateResponse:
        return TemplateResponse(
            request,
            f"admin/messaging_app/{template}",
            {**self.admin_site.each_context(request), "opts": self.opts, **context},
        )

    def _require(self, request: HttpRequest, replay: bool = False) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if replay and not request.user.has_perm(REPLAY_PERMISSION):
            raise PermissionDenied

    def conversation_view(self, request: HttpRequest, correlation_id: str) -> HttpResponse:
        self._require(request)
        rows = MessageLog.objects.filter(correlation_id=correlation_id).order_by("created_at", "id")
        return self._page(
            request,
            "conversation.html",
            title=f"Conversation {correlation_id}",
            rows=rows,
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
                    True,
                    request,
                    entries=entry_ids,
                )
                messages.success(request, f"Replay of {len(entry_ids)} dead letter(s) queued.")
            return HttpResponseRedirect(reverse("admin:messaging_dead_letters"))
        receiver = request.GET.get("receiver") or None
        return self._page(
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
                True,
                request,
                start=data["start"].isoformat(),
                end=data["end"].isoformat(),
            )
            messages.success(request, f"Replay of {data['receiver']}'s messages queued.")
            return HttpResponseRedirect(reverse("admin:messaging_app_messagelog_changelist"))
        return self._page(request, "replay_range.html", title="Replay a time range", form=form)

    def streams_view(self, request: HttpRequest) -> HttpResponse:
        self._require(request)
        return self._page(
            request, "streams.html", title="Stream health", streams=services.stream_health()
        )
