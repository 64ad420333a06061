"""Agents in the admin. New or regenerated credentials (the API token and the Redis password) are
shown once, as the agent's whole environment, in the response to the POST that made them (never
in a message, a session or a log); only their hashes are stored."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_POST

from agents_app.models import Agent
from agents_app.services import (
    Credentials,
    agent_environment,
    credential_history,
    issue_credentials,
)
from audit_app import services as audit
from audit_app.admin_mixins import AuditedModelAdmin
from foundation_core.admin_pages import AdminPagesMixin

#: Each of these lets its holder read what an agent may read (docs/secrets.md); so does
#: ``secrets_app.manage_grants``, on the grants that ``secrets_app.admin`` adds to this page.
ISSUE = "agents_app.issue_credentials"
PUBLIC_KEY = "agents_app.change_public_key"


@admin.register(Agent)
class AgentAdmin(AdminPagesMixin, AuditedModelAdmin):
    list_display = ("name", "is_active", "sealed", "last_seen_at", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "description")
    fields = ("name", "description", "is_active", "public_key", "last_seen_at", "created_at")
    readonly_fields = ("last_seen_at", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Adding an agent issues its credentials.
        return super().has_add_permission(request) and request.user.has_perm(ISSUE)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and not request.user.has_perm(PUBLIC_KEY):
            fields += ("public_key",)
        return fields

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        agent = self.get_object(request, object_id)
        context = {
            **(extra_context or {}),
            "may_issue_credentials": request.user.has_perm(ISSUE),
            "credential_history": credential_history(agent) if agent is not None else [],
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    @admin.display(boolean=True, description="Sealed delivery")
    def sealed(self, obj: Agent) -> bool:
        return bool(obj.public_key)

    def get_urls(self) -> list[Any]:
        return [
            self.admin_page_path(
                "<int:pk>/regenerate-token/",
                require_POST(self.regenerate_token_view),
                "regenerate_token",
            ),
            *super().get_urls(),
        ]

    def save_model(self, request: HttpRequest, obj: Agent, form: ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        if not change:
            request._new_credentials = Credentials(  # type: ignore[attr-defined]
                obj.set_new_token(), obj.set_new_redis_password()
            )
        super().save_model(request, obj, form, change)
        if not change:
            audit.record(
                "agents.token", request.user, f"agent:{obj.name}", "issue", request=request
            )

    def response_add(
        self, request: HttpRequest, obj: Agent, post_url_continue: Any = None
    ) -> HttpResponse:
        credentials = getattr(request, "_new_credentials", None)
        if credentials is None:
            return super().response_add(request, obj, post_url_continue)
        return self._token_page(request, obj, credentials)

    def regenerate_token_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        agent = get_object_or_404(Agent, pk=pk)
        if not (self.has_change_permission(request, agent) and request.user.has_perm(ISSUE)):
            audit.record(
                "agents.token",
                request.user,
                f"agent:{agent.name}",
                "regenerate",
                success=False,
                request=request,
                error="not permitted to issue credentials",
            )
            raise PermissionDenied
        credentials = issue_credentials(agent, actor=request.user, request=request)
        return self._token_page(request, agent, credentials)

    def _token_page(
        self, request: HttpRequest, agent: Agent, credentials: Credentials
    ) -> HttpResponse:
        response = self.render_admin_page(
            request,
            "token_once.html",
            title=f"Environment of {agent.name}",
            crumb="Environment",
            original=agent,
            token=credentials.token,
            environment="\n".join(
                f"{key}={value}" for key, value in agent_environment(agent, credentials)
            ),
        )
        response["Cache-Control"] = "no-store"
        return response
