"""The lean ASGI route for secret reads behaves exactly like the ninja view."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from audit_app.models import AuditLog
from foundation_client import generate_keypair
from foundation_client.protocol import open_sealed, sealing_context
from foundation_site.asgi import application
from secrets_app import services

pytestmark = pytest.mark.django_db(transaction=True)


def call(method: str, path: str, token: str | None = None, host: str = "localhost"):
    headers = {"Host": host, "User-Agent": "route-test/1"}
    if token:
        headers["Authorization"] = f"Bearer {token}"

    async def go():
        transport = httpx.ASGITransport(app=application, client=("198.51.100.7", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.request(method, path, headers=headers)

    return asyncio.run(go())


@pytest.fixture
def secret(admin_user):
    return services.create_secret("route/key", "route-value", actor=admin_user, backend="local")


def test_a_granted_read_is_answered_and_audited(secret, make_agent):
    _, token = make_agent(grants=["route/*"])
    response = call("GET", "/api/v1/secrets/route%2Fkey", token)
    assert response.status_code == 200
    assert response.json() == {"name": "route/key", "version": 1, "value": "route-value"}
    assert response.headers["cache-control"] == "no-store"
    row = AuditLog.objects.get(event_type="secrets.read")
    assert (row.actor, row.success, row.ip_address, row.user_agent) == (
        "ai_manager",
        True,
        "198.51.100.7",
        "route-test/1",
    )


def test_sealed_reads_work_through_the_route(secret, make_agent):
    private, public = generate_keypair()
    _, token = make_agent(grants=["route/key"], public_key=public)
    body = call("GET", "/api/v1/secrets/route/key", token).json()
    assert "value" not in body
    assert open_sealed(body["sealed"], private, sealing_context("route/key", 1)) == b"route-value"


@pytest.mark.parametrize(
    ("token", "grants", "status"),
    [(None, ["*"], 401), ("fdn_bogus", ["*"], 401), ("real", ["other"], 403), ("real", ["*"], 404)],
)
def test_refusals_match_the_ninja_view(secret, make_agent, token, grants, status):
    _, real = make_agent(grants=grants)
    name = "missing" if status == 404 else "route/key"
    response = call("GET", f"/api/v1/secrets/{name}", real if token == "real" else token)
    assert response.status_code == status
    assert "detail" in response.json()
    assert AuditLog.objects.get(event_type="secrets.read").success is False


def test_an_unknown_host_is_refused(secret, make_agent):
    _, token = make_agent()
    response = call("GET", "/api/v1/secrets/route/key", token, host="evil.example")
    assert response.status_code == 400
    assert not AuditLog.objects.filter(event_type="secrets.read").exists()


def test_other_requests_go_to_django(secret, make_agent):
    _, token = make_agent()
    assert call("POST", "/api/v1/secrets/route/key", token).status_code == 405
    assert call("GET", "/api/v1/openapi.json").status_code == 200
    assert call("GET", "/healthz").json() == {"status": "ok"}


def test_plain_http_is_refused_when_https_is_required(settings, secret, make_agent):
    settings.SECURE_SSL_REDIRECT = True
    _, token = make_agent()
    response = call("GET", "/api/v1/secrets/route/key", token)
    assert response.status_code == 403
    assert response.json() == {"detail": "HTTPS is required"}
    assert "route-value" not in response.text
