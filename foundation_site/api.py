"""The agent API (``/api/v1/``), with its OpenAPI document at ``/api/v1/openapi.json``."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import NinjaAPI

from agents_app.wire import SERVED_PROTOCOL_VERSIONS
from foundation_client.protocol import served_document
from secrets_app.api import router as secrets_router

api = NinjaAPI(
    title="Foundation agent API",
    version="1",
    description="What agents call with their bearer token. Admins use the admin site instead.",
    urls_namespace="agent_api",
)
api.add_router("/secrets", secrets_router)


@api.get("/protocol", auth=None, summary="The protocol versions this site serves")
def protocol(request: HttpRequest) -> dict[str, int]:
    """What a client checks at start (``foundation_client.protocol.check_served``); public, as
    the versions are in the open-source client anyway."""
    return served_document(SERVED_PROTOCOL_VERSIONS)
