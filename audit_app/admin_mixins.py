"""Admin base classes every app uses.

``AuditedModelAdmin`` turns each admin add, change and delete into an audit row (Django's own
``LogEntry`` is kept too, for the admin's "recent actions"). ``ReadOnlyModelAdmin`` is for log
tables: nobody, superusers included, may add, change or delete through the admin.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from audit_app import services


def _audit(request: HttpRequest, obj: Model, action: str, **metadata: Any) -> None:
    meta = obj._meta
    services.record(
        "admin.change",
        request.user,
        f"{meta.app_label}.{meta.model_name}:{obj.pk}",
        action,
        request=request,
        object_repr=str(obj)[:200],
        **metadata,
    )


class AuditedModelAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        entry = super().log_addition(request, obj, message)
        _audit(request, obj, "add", change_message=message)
        return entry

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        entry = super().log_change(request, obj, message)
        _audit(request, obj, "change", change_message=message)
        return entry

    def log_deletions(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        objects = list(queryset)
        entries = super().log_deletions(request, objects)  # type: ignore[arg-type]
        for obj in objects:
            _audit(request, obj, "delete")
        return entries


class ReadOnlyModelAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """View-only for everyone: the admin offers no add, change, delete or bulk actions."""

    actions = None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
