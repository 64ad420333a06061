"""The lean ASGI route for secret reads behaves exactly like the ninja view."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from asgi_lifespan import LifespanManager

from audit_app.models import AuditLog
from foundation_client import ClientSettings, SecretsClient, SecretUnavailable, generate_keypair
from foundation_client.protocol import SECRETS_API_PATH, SecretAnswer, sealing_context
from foundation_client.protocol.answers import load_site_public_key
from foundation_client.protocol.sealing import open_sealed
from foundation_core import signing
from foundation_site.asgi import application
from secrets_app import services
from tests.fixtures.served import serve

pytestmark = pytest.mark.django_db(transaction=True)


def call(method: str, path: str, token: str | None = None, host: str = "localhost"):
    """One request to the served application, its lifespan run as Uvicorn runs it."""
    headers = {"Host": host, "User-Agent": "route-test/1"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return serve((method, path, headers))[0]


@pytest.fixture
def secret(admin_user):
    return services.create_secret("route/key", "route-value", actor=admin_user, backend="local")


def test_a_granted_read_is_answered_and_audited(secret, make_agent):
    _, token = make_agent(grants=["route/*"])
    response = call("GET", "/api/v1/secrets/route%2Fkey?nonce=route-nonce-000000001", token)
    assert response.status_code == 200
    body = response.json()
    assert SecretAnswer.from_body(body).verify([load_site_public_key(signing.site_public_key())])
    assert body.pop("signature")["alg"] == "Ed25519"
    assert body == {
        "agent": "ai_manager",
        "name": "route/key",
        "version": 1,
        "nonce": "route-nonce-000000001",
        "value": "route-value",
    }
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


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?nonce=route-nonce-000000001",
        "?nonce=first-nonce-0000000001&nonce=last-nonce-00000000001",
        "?nonce=",
        "?nonce=short",
        "?nonce=%20spaced%20nonce%20000000",
        "?other=1",
    ],
)
def test_nonces_are_handled_as_the_ninja_view_handles_them(client, secret, make_agent, query):
    _, token = make_agent(grants=["route/*"])
    path = f"/api/v1/secrets/route%2Fkey{query}"
    route = call("GET", path, token)
    view = client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert route.status_code == view.status_code
    # Ed25519 signatures are deterministic: the same answer, the same signature.
    assert route.json() == view.json()


class RouteTransport:
    """SecretsClient's transport straight into the served application, through the lean route;
    ``replay`` serves the first secret answer again for every later read, as a man in the
    middle."""

    def __init__(self, app, token: str, *, replay: bool = False) -> None:
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("198.51.100.7", 5000)),
            base_url="http://localhost",
            headers={"Authorization": f"Bearer {token}"},
        )
        self.replay = replay
        self.first: dict | None = None

    async def get_json(self, path: str):
        read = path.startswith(SECRETS_API_PATH)
        if read and self.replay and self.first is not None:
            return 200, self.first
        response = await self.http.get(path)
        if read:
            self.first = self.first or response.json()
        return response.status_code, response.json()

    async def close(self) -> None:
        await self.http.aclose()


def test_a_pinned_agent_accepts_the_routes_answers_and_refuses_a_replayed_one(secret, make_agent):
    private, public = generate_keypair()
    _, token = make_agent(grants=["route/*"], public_key=public)
    settings = ClientSettings(
        agent_name="ai_manager",
        agent_token=token,
        private_key=private,
        site_public_key=signing.site_public_key(),
    )

    async def read_twice(replay: bool = False, **options) -> str:
        async with LifespanManager(application) as served:
            transport = RouteTransport(served.app, token, replay=replay)
            async with SecretsClient(
                settings, transport=transport, listen=False, ttl=0, **options
            ) as agent:
                assert await agent.get("route/key") == "route-value"
                return await agent.get("route/key")

    assert asyncio.run(read_twice()) == "route-value"
    # No stale window, which would serve the value verified by the first read instead.
    with pytest.raises(SecretUnavailable, match="replayed answer"):
        asyncio.run(read_twice(replay=True, stale_if_error=0))


@pytest.mark.parametrize(
    "path", ["%00x", "x%0aFAKE%20audit%20event%3Dadmin.login", "x%2F..%2Fprod"]
)
def test_a_probe_with_a_hostile_name_and_a_bad_token_is_refused_and_audited(path, caplog):
    """Findings 2 and 4 of the review: a NUL made PostgreSQL refuse the audit row (a 500, and
    the probe unrecorded); a newline wrote a forged line into the audit log."""
    import json
    import logging

    with caplog.at_level(logging.INFO, logger="foundation.audit"):
        response = call("GET", f"/api/v1/secrets/{path}", "fdn_not-a-token")
    assert response.status_code == 401
    row = AuditLog.objects.get(event_type="secrets.read")
    assert (row.actor, row.resource, row.success) == (
        "(unknown agent)",
        "secret:(invalid name)",
        False,
    )
    # The log line is one JSON record, whatever the name held.
    handler = logging.getLogger().handlers[0]
    (record,) = [r for r in caplog.records if r.name == "foundation.audit"]
    line = handler.format(record)
    assert "\n" not in line
    assert json.loads(line)["resource"] == "secret:(invalid name)"
