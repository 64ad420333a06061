"""Secrets in the admin: create (write-only value), set a new value, versions, rollback, rotate,
delete. Each action goes through ``secrets_app.services``, which audits it; no page ever shows a
value. And the agents' grants, on the agent's own page."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from agents_app.admin import AgentAdmin
from agents_app.models import Agent
from audit_app.admin_mixins import AuditedModelAdmin
from foundation_core.admin_pages import AdminPagesMixin
from secrets_app import services
from secrets_app.exceptions import SecretsError
from secrets_app.forms import SecretCreateForm, SetValueForm
from secrets_app.models import SecretGrant, SecretMetadata, SecretVersion
from secrets_app.rotators import get_rotator


class RotationDueFilter(admin.SimpleListFilter):
    title = "rotation"
    parameter_name = "rotation"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("due", "Due now")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "due":
            due = [s.pk for s in services.due_for_rotation()]
            return queryset.filter(pk__in=due)
        return queryset


@admin.register(SecretMetadata)
class SecretMetadataAdmin(AdminPagesMixin, AuditedModelAdmin):
    list_display = (
        "secret_name",
        "provider",
        "storage_backend",
        "current_version",
        "rotation_status",
        "last_rotated",
        "last_read_at",
        "last_read_by",
    )
    list_filter = (RotationDueFilter, "storage_backend", "provider")
    search_fields = ("secret_name", "provider", "description")
    fields = (
        "secret_name",
        "storage_backend",
        "provider",
        "description",
        "rotation_policy_days",
        "current_version",
        "last_rotated",
        "last_read_at",
        "last_read_by",
        "created_at",
        "updated_at",
    )
    # Only these are edited here; the value, versions and rotation have pages of their own.
    readonly_fields = tuple(
        f for f in fields if f not in {"provider", "description", "rotation_policy_days"}
    )
    actions = None  # no bulk delete of secrets

    @admin.display(description="Rotation")
    def rotation_status(self, obj: SecretMetadata) -> str:
        due = obj.rotation_due_at()
        if due is None:
            return "no policy"
        if due <= timezone.now():
            if get_rotator(obj.provider) is None:
                return format_html(
                    '<strong style="color:#ba2121">due since {}: set a new value</strong>'
                    " (no rotator for its provider)",
                    due.date(),
                )
            return format_html('<strong style="color:#ba2121">due since {}</strong>', due.date())
        return f"due {due.date()}"

    # --- URLs ---------------------------------------------------------------------------------
    def get_urls(self) -> list[Any]:
        page = self.admin_page_path
        return [
            page("<int:pk>/set-value/", self.set_value_view, "set_value"),
            page("<int:pk>/versions/", self.versions_view, "versions"),
            page("<int:pk>/rotate/", require_POST(self.rotate_view), "rotate"),
            page("<int:pk>/rollback/<int:version>/", require_POST(self.rollback_view), "rollback"),
            *super().get_urls(),
        ]

    def _secret(self, request: HttpRequest, pk: int, *, change: bool) -> SecretMetadata:
        secret = get_object_or_404(SecretMetadata, pk=pk)
        allowed = (
            self.has_change_permission(request, secret)
            if change
            else self.has_view_permission(request, secret)
        )
        if not allowed:
            raise PermissionDenied
        return secret

    def _to_change(self, secret: SecretMetadata) -> HttpResponseRedirect:
        return HttpResponseRedirect(self.admin_url("change", secret.pk))

    # --- Create ------------------------------------------------------------------------------
    @method_decorator(sensitive_post_parameters("value"))
    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = SecretCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                secret = services.create_secret(
                    data["secret_name"],
                    data["value"],
                    actor=request.user,
                    request=request,
                    backend=data["storage_backend"],
                    provider=data["provider"],
                    rotation_policy_days=data["rotation_policy_days"],
                    description=data["description"],
                )
            except SecretsError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request,
                    f"Secret {secret.secret_name} created (version {secret.current_version}).",
                )
                return self._to_change(secret)
        return self.render_admin_page(
            request,
            "form_page.html",
            title="Add secret",
            form=form,
            submit="Create secret",
        )

    # --- New value, versions, rollback, rotation ---------------------------------------------
    @method_decorator(sensitive_post_parameters("value"))
    def set_value_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        secret = self._secret(request, pk, change=True)
        form = SetValueForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                version = services.set_value(
                    secret, form.cleaned_data["value"], actor=request.user, request=request
                )
            except SecretsError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"New value stored as version {version}.")
                return self._to_change(secret)
        return self.render_admin_page(
            request,
            "form_page.html",
            title=f"Set a new value for {secret}",
            crumb="Set a new value",
            form=form,
            submit="Store new version",
            original=secret,
        )

    def versions_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        secret = self._secret(request, pk, change=False)
        return self.render_admin_page(
            request,
            "versions.html",
            title=f"Versions of {secret}",
            crumb="Versions",
            original=secret,
            versions=SecretVersion.objects.filter(secret=secret).order_by("-version"),
            can_change=self.has_change_permission(request, secret),
        )

    def rollback_view(self, request: HttpRequest, pk: int, version: int) -> HttpResponse:
        secret = self._secret(request, pk, change=True)
        try:
            new = services.rollback(secret, version, actor=request.user, request=request)
        except SecretsError as exc:
            messages.error(request, f"Rollback failed: {exc}")
        else:
            messages.success(request, f"Version {version} is current again, as version {new}.")
        return HttpResponseRedirect(self.admin_url("versions", secret.pk))

    def rotate_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        secret = self._secret(request, pk, change=True)
        try:
            version = services.rotate(secret, actor=request.user, request=request)
        except SecretsError as exc:
            messages.error(request, f"Rotation failed, the current version keeps serving: {exc}")
        else:
            messages.success(request, f"Rotated: version {version} is current.")
        return self._to_change(secret)

    # --- Delete goes through the service (backend first, then metadata) -----------------------
    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method != "POST":
            return super().delete_view(request, object_id, extra_context)
        secret = get_object_or_404(SecretMetadata, pk=object_id)
        if not self.has_delete_permission(request, secret):
            raise PermissionDenied
        try:
            services.delete_secret(secret, actor=request.user, request=request)
        except SecretsError as exc:
            messages.error(request, f"Deletion failed: {exc}")
            return self._to_change(secret)
        messages.success(request, f"Secret {secret.secret_name} and all its versions deleted.")
        return HttpResponseRedirect(self.admin_url("changelist"))


#: Lets its holder read what an agent may read, like the agent's own credentials
#: (docs/secrets.md, "Who may issue credentials").
GRANTS = "secrets_app.manage_grants"


class SecretGrantInline(admin.TabularInline):  # type: ignore[type-arg]
    """An agent's grants: shown to whoever may see the agent, edited only with ``GRANTS``."""

    model = SecretGrant
    extra = 1
    fields = ("pattern",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(GRANTS)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(GRANTS)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(GRANTS)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("agents_app.view_agent") or request.user.has_perm(
            "agents_app.change_agent"
        )


class AgentWithGrantsAdmin(AgentAdmin):
    """The agents' page, with what each may read: the grants are the secrets' policy, so this
    app puts them on the page (``agents_app`` knows nothing of them)."""

    inlines = [SecretGrantInline]

    def get_list_display(self, request: HttpRequest) -> Any:
        shown = list(super().get_list_display(request))
        return [*shown[:3], "grant_list", *shown[3:]]

    def get_search_fields(self, request: HttpRequest) -> Any:
        return (*super().get_search_fields(request), "grants__pattern")

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("grants")

    @admin.display(description="Grants")
    def grant_list(self, obj: Agent) -> str:
        return ", ".join(g.pattern for g in obj.grants.all()) or "—"


admin.site.unregister(Agent)
admin.site.register(Agent, AgentWithGrantsAdmin)
