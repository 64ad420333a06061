"""The agent API (``/api/v1/``), with its OpenAPI document at ``/api/v1/openapi.json``."""

from __future__ import annotations

from ninja import NinjaAPI

from secrets_app.api import router as secrets_router

api = NinjaAPI(
    title="Foundation agent API",
    version="1",
    description="What agents call with their bearer token. Admins use the admin site instead.",
    urls_namespace="agent_api",
)
api.add_router("/secrets", secrets_router)
