"""The admin over tables of millions of rows (the message log, the audit log): every query a
list page runs is served by an index and bounded, whatever the size of the table.

- ``UncountedPaginator``: no COUNT; a page reads one row more than it shows; pages past 100 are
  refused (older rows are reached by time); on PostgreSQL a page's query has a time limit.
- ``ExactFilter``: a box for one exact value, instead of Django's list of a column's values
  (``SELECT DISTINCT`` over the table on every page).
- ``AtScaleAdmin``: the two, a changelist that sorts only by ``sortable_by`` and shows the page
  it read, and a query string that may hold only the filters' own lookups.

docs/messaging.md, "The message log at scale", says why each; docs/architecture.md, "Audit",
what the audit log's pages use.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any, cast

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.paginator import Page, Paginator
from django.db import OperationalError, connections, transaction
from django.db.models import QuerySet
from django.http import HttpRequest

QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement stopped by statement_timeout


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

    template = "admin/exact_filter.html"
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


class UncountedChangeList(ChangeList):
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


class AtScaleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """What a list over millions of rows needs; ``filter_lookups`` names the lookups the query
    string may hold (a crafted one, a substring of a payload say, would scan the table)."""

    list_per_page = 100
    list_max_show_all = 100  # "show all" only when all fits one page: the count is not real
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts are COUNTs over the table
    filter_lookups: frozenset[str] = frozenset()

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup in self.filter_lookups

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return UncountedChangeList

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
