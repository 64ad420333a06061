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

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, cast

import django_rq
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db import OperationalError, connections, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.html import format_html
from django.utils.safestring import SafeString

from agents_app.models import Agent
from audit_app import services as audit
from audit_app.admin_mixins import ReadOnlyModelAdmin
from messaging_app import jobs, services
from messaging_app.forms import ReplayRangeForm
from messaging_app.models import MessageLog

REPLAY_PERMISSION = "messaging_app.replay_messages"
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement stopped by statement_timeout
# A conversation is a handful of messages; one that is not is shown in part rather than slowly.
CONVERSATION_LIMIT = 500


class UncountedPaginator(Paginator):  # type: ignore[type-arg]
    """Pages through a queryset without counting it: the page's one query asks for a row more
    than the page holds, which says whether another page follows.

    The changelist counts the filtered rows for every page, and over the message log that count
    reads the whole table, or for two filters together a large part of two indexes. Here the
    count goes only as far as the page: exact on the last page, one more than shown before it.
    Pages past ``max_pages`` are refused, which bounds the OFFSET a page costs; older rows are
    reached by filtering by time (``before``).

    On PostgreSQL the page's query may run for ``timeout_ms`` at most. One filter, or filters
    that often go together, find a page in milliseconds through an index; two that never go
    together (a sender and a receiver it never writes to) would walk one filter's whole index
    first, seconds on a large log. Such a page comes back empty, ``timed_out``, saying to narrow
    the search by time.
    """

    max_pages = 100
    timeout_ms = 200

    def __init__(self, object_list: Any, per_page: int, number: int = 1, **kwargs: Any) -> None:
        super().__init__(object_list, per_page, **kwargs)
        self.number = max(number, 1)
        self.timed_out = False

    @cached_property
    def _rows(self) -> list[Any]:
        if self.number > self.max_pages:
            return []  # nothing read: the page is then out of range (Django's "?e=1")
        start = (self.number - 1) * int(self.per_page)
        rows = cast("QuerySet[Any]", self.object_list)
        page = rows[start : start + int(self.per_page) + 1]
        db = connections[page.db]
        if db.vendor != "postgresql":
            return list(page)
        try:
            with transaction.atomic(using=page.db), db.cursor() as cursor:
                cursor.execute(
                    "SELECT current_setting('statement_timeout'),"
                    " set_config('statement_timeout', %s, true)",
                    [f"{self.timeout_ms}ms"],
                )
                previous = cursor.fetchone()[0]
                found = list(page)
                # Inside a longer transaction (a test's, ATOMIC_REQUESTS) the limit would last
                # to its end.
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
                return found
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != QUERY_CANCELED:
                raise
            self.timed_out = True
            return []

    @cached_property
    def count(self) -> int:
        seen = (self.number - 1) * int(self.per_page) + len(self._rows)
        if self.timed_out:
            seen += 1  # the page stays in range: it says what happened instead of its rows
        return min(seen, self.max_pages * int(self.per_page))  # no link past the last page

    @property
    def more(self) -> bool:
        """Whether rows follow this page."""
        return len(self._rows) > int(self.per_page)

    def page(self, number: Any) -> Any:
        number = self.validate_number(number)
        if number != self.number:
            return super().page(number)
        return Page(self._rows[: int(self.per_page)], number, self)


class ExactFilter(admin.SimpleListFilter):
    """A text box for one exact value of a column, served by that column's index.

    Django's filter for a plain column lists the column's values, with ``SELECT DISTINCT`` over
    the whole table on every page. This asks for the value instead, and suggests the known ones
    where a small table has them (``suggestions``).
    """

    template = "admin/messaging_app/exact_filter.html"
    lookup = ""  # the ORM lookup the value is given to

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return []

    def has_output(self) -> bool:
        return True

    def suggestions(self) -> list[str]:
        return []

    def clean(self, value: str) -> object:
        """The value for the lookup; raise ``IncorrectLookupParameters`` for one it cannot take
        (the admin then shows the list unfiltered, with a note)."""
        return value

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = (self.value() or "").strip()
        if not value:
            return queryset
        return queryset.filter(**{self.lookup: self.clean(value)})

    def choices(self, changelist: ChangeList) -> Iterator[dict[str, Any]]:  # type: ignore[override]
        # One "choice": what the template needs to draw the box (not a list of links). The other
        # parameters go along as hidden inputs, so that filters combine.
        name = self.parameter_name or ""
        yield {
            "parameter": name,
            "value": self.value() or "",
            "hidden": [(k, v) for k, v in changelist.params.items() if k != name],
            "suggestions": self.suggestions(),
            "clear": changelist.get_query_string(remove=[name]),
        }


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


class MessageLogChangeList(ChangeList):
    """Shows the page ``UncountedPaginator`` read, and sorts only by the columns ``sortable_by``
    names: Django's own sorts by any column the query string asks for (``?o=1``), which on a
    column without an index sorts the whole table."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        if self.paginator.timed_out:
            self.result_list = []
        elif not self.multi_page:
            if self.page_num > 1:
                raise IncorrectLookupParameters("an empty page past the last")  # "?e=1"
            # All there is fits the page the paginator read; Django would query it again.
            self.result_list = self.paginator.page(1).object_list
        # Django's search box says "N results (Show all)" whenever the total is not counted; here
        # N is not a total either (see UncountedPaginator): the pagination line says what is known.
        self.full_result_count = self.result_count

    def get_ordering_field(self, field_name: Any) -> Any:
        if field_name not in (self.sortable_by or ()):
            return None  # skipped: the order falls back to the primary key's index
        return super().get_ordering_field(field_name)


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
    list_per_page = 100
    list_max_show_all = 100  # "show all" only when all fits one page: the count is not real
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts are COUNTs over the table
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

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup in self.filter_lookups

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return MessageLogChangeList

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> UncountedPaginator:
        try:
            number = int(request.GET.get(PAGE_VAR, 1))
        except ValueError:
            number = 1  # as the changelist reads it
        return UncountedPaginator(
            queryset, per_page, number, allow_empty_first_page=allow_empty_first_page
        )

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
        rows = list(
            MessageLog.objects.filter(correlation_id=correlation_id).order_by("created_at", "id")[
                : CONVERSATION_LIMIT + 1
            ]
        )
        return self._page(
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
