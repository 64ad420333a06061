"""The one read path (``secrets_app.reading``), reached both ways a read arrives: the served
ASGI application (its lean route, its lifespan's pool) and the ninja view under Django's
handlers. Each refusal rule answers, and is audited, the same on both."""

from __future__ import annotations

import asyncio
import gc
import sys
import uuid

import pytest
from asgi_lifespan import LifespanManager
from django.conf import settings as django_settings
from django.db import connection

from audit_app import services as audit_services
from audit_app.models import AuditLog
from foundation_client import generate_keypair
from foundation_core import ratelimit
from foundation_site.asgi import application
from secrets_app import reading, services
from secrets_app.asgi import MIDDLEWARE_ACCOUNTED
from tests.fixtures.served import serve

pytestmark = pytest.mark.django_db(transaction=True)

NONCE = "reading-nonce-00000001"


@pytest.fixture(autouse=True)
def _every_cache_off(settings):
    settings.AGENT_AUTH_CACHE_SECONDS = 0
    settings.SECRETS_SITE_CACHE_SECONDS = 0


@pytest.fixture
def answered_by(monkeypatch):
    """Which ``Database`` wrote each read's audit row: the code that answered."""
    seen: list[str] = []
    for kind in (reading.Pooled, reading.InThread):
        original = kind.audit

        async def spy(self, values, _original=original, _kind=kind.__name__):
            seen.append(_kind)
            return await _original(self, values)

        monkeypatch.setattr(kind, "audit", spy)
    return seen


def both(client, name: str, token: str | None, nonce: str | None = NONCE):
    """The same read through the served application and through the ninja view: for each,
    (status, body without its signature, Retry-After, the audit row it wrote)."""
    query = f"?nonce={nonce}" if nonce is not None else ""
    path = f"/api/v1/secrets/{name}{query}"
    headers = {"Host": "localhost", "User-Agent": "reading-test/1"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    answers = []
    for arrival in ("served", "django"):
        before = AuditLog.objects.count()
        if arrival == "served":
            response = serve(("GET", path, headers), client=("203.0.113.9", 5000))[0]
            status, body, retry = response.status_code, response.json(), response.headers
        else:
            extra = {"HTTP_AUTHORIZATION": headers["Authorization"]} if token else {}
            response = client.get(
                path, REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="reading-test/1", **extra
            )
            status, body, retry = response.status_code, response.json(), response.headers
        body.pop("signature", None)
        rows = list(
            AuditLog.objects.order_by("id")[before:].values_list(
                "event_type",
                "actor",
                "resource",
                "action",
                "success",
                "error_message",
                "metadata",
                "ip_address",
                "user_agent",
            )
        )
        answers.append((status, body, retry.get("Retry-After"), rows))
    served, django = answers
    assert served == django, "the two ways a read arrives answered differently"
    return served


def expected_answerer() -> str:
    return "Pooled" if connection.vendor == "postgresql" else "InThread"


@pytest.fixture
def secret(admin_user):
    return services.create_secret("read/key", "read-value", actor=admin_user, backend="local")


def row(actor, resource, success, error, metadata=None, action="read"):
    return (
        "secrets.read",
        actor,
        resource,
        action,
        success,
        error,
        metadata,
        "203.0.113.9",
        "reading-test/1",
    )


def test_a_granted_read(client, secret, make_agent, answered_by):
    _, token = make_agent(grants=["read/*"])
    status, body, _, rows = both(client, "read/key", token)
    assert (status, body["value"], body["version"], body["nonce"]) == (200, "read-value", 1, NONCE)
    assert rows == [row("ai_manager", "secret:read/key", True, None, {"version": 1})]
    assert answered_by == [expected_answerer(), "InThread"]


def test_no_token_and_a_bad_token(client, secret):
    assert both(client, "read/key", None)[::3] == (
        401,
        [row("(unknown agent)", "secret:read/key", False, "no agent token")],
    )
    assert both(client, "read/key", "fdn_not-a-token")[::3] == (
        401,
        [row("(unknown agent)", "secret:read/key", False, "invalid agent token")],
    )


def test_no_grant(client, secret, make_agent):
    _, token = make_agent(grants=["other/*"])
    status, body, _, rows = both(client, "read/key", token)
    assert (status, body) == (403, {"detail": "no grant for this secret"})
    error = "AccessDenied: no grant for this secret"
    assert rows == [row("ai_manager", "secret:read/key", False, error)]


def test_a_disabled_agent(client, secret, make_agent):
    agent, token = make_agent(grants=["read/*"])
    agent.is_active = False
    agent.save()
    status, body, _, rows = both(client, "read/key", token)
    assert (status, body) == (403, {"detail": "agent is disabled"})
    assert rows == [row("ai_manager", "secret:read/key", False, "AccessDenied: agent is disabled")]


def test_the_read_quota(client, secret, make_agent, settings):
    settings.RATELIMIT_AGENT_READS = "1/minute"
    agent, token = make_agent(grants=["read/*"])
    answers = []
    for arrival in ("served", "django"):
        ratelimit.clear("reads", agent.name)
        path = f"/api/v1/secrets/read/key?nonce={NONCE}"
        if arrival == "served":
            headers = {"Host": "localhost", "Authorization": f"Bearer {token}"}
            first, second = serve(("GET", path, headers), ("GET", path, headers))
        else:
            auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
            first, second = client.get(path, **auth), client.get(path, **auth)
        answers.append((first.status_code, second.status_code, second.json()["detail"]))
        assert int(second.headers["Retry-After"]) > 0
    assert answers == [(200, 429, "this agent's read quota is used up")] * 2


def test_a_bad_name(client, secret, make_agent):
    _, token = make_agent(grants=["*"])
    status, body, _, rows = both(client, "read%2F..%2Fkey", token)
    assert (status, body) == (404, {"detail": "secret 'read/../key' does not exist"})
    error = "SecretDoesNotExist: secret '(invalid name)' does not exist"
    assert rows == [row("ai_manager", "secret:(invalid name)", False, error)]


def test_a_missing_secret(client, secret, make_agent):
    _, token = make_agent(grants=["read/*"])
    status, body, _, rows = both(client, "read/gone", token)
    assert (status, body) == (404, {"detail": "secret 'read/gone' does not exist"})
    error = "SecretDoesNotExist: secret 'read/gone' does not exist"
    assert rows == [row("ai_manager", "secret:read/gone", False, error)]


def test_a_malformed_nonce(client, secret, make_agent):
    _, token = make_agent(grants=["read/*"])
    status, _, _, rows = both(client, "read/key", token, nonce="short")
    assert status == 400
    assert rows == [row("ai_manager", "secret:read/key", False, "malformed nonce")]


def test_an_unusable_public_key(client, secret, make_agent, monkeypatch):
    _, public = generate_keypair()
    _, token = make_agent(grants=["read/*"], public_key=public)
    reading.agent_key.cache_clear()
    monkeypatch.setattr(reading, "load_public_key", _refuse)
    try:
        status, body, _, rows = both(client, "read/key", token)
    finally:
        reading.agent_key.cache_clear()
    assert (status, body) == (503, {"detail": "the agent's public key is unusable"})
    error = "the agent's public key is unusable"
    assert rows == [row("ai_manager", "secret:read/key", False, error, action="seal")]


def _refuse(key: str) -> bytes:
    raise ValueError("not a key")


def test_a_vault_that_does_not_answer_writes_one_failure_and_no_success(
    client, make_agent, admin_user, private_openbao, vault_prefix
):
    services.create_secret("read/vaulted", "v", actor=admin_user, backend="vault")
    _, token = make_agent(grants=["read/*"])
    private_openbao.stop()
    status, body, _, rows = both(client, "read/vaulted", token)
    assert (status, body) == (503, {"detail": "the secret store is unavailable"})
    assert [(r[4], r[5].split(":")[0]) for r in rows] == [(False, "BackendUnavailable")]


def test_a_read_that_cannot_be_audited_gives_no_value(secret, make_agent, monkeypatch):
    """The success row is committed before the value leaves: no row, no value."""
    _, token = make_agent(grants=["read/*"])

    def broken(*args, **kwargs):
        raise OSError("the database went away")

    async def broken_async(*args, **kwargs):
        broken()

    monkeypatch.setattr(audit_services, "write_async", broken_async)
    monkeypatch.setattr(audit_services, "write", broken)
    headers = {"Host": "localhost", "Authorization": f"Bearer {token}"}
    response = serve(("GET", "/api/v1/secrets/read/key", headers))[0]
    assert (response.status_code, response.json()) == (
        503,
        {"detail": "the read could not be audited"},
    )
    assert "read-value" not in response.text
    assert not AuditLog.objects.filter(event_type="secrets.read").exists()


def test_reads_over_tls_verify_openbaos_certificate(
    make_agent, admin_user, tls_openbao, vault_prefix, settings
):
    """Against a real OpenBao serving TLS (``bao server -dev-tls``): read with its CA; refused
    by the certificate check with another CA."""
    services.create_secret("read/tls", "over-tls", actor=admin_user, backend="vault")
    _, token = make_agent(grants=["read/*"])
    headers = {"Host": "localhost", "Authorization": f"Bearer {token}"}
    response = serve(("GET", "/api/v1/secrets/read/tls", headers))[0]
    assert (response.status_code, response.json()["value"]) == (200, "over-tls")
    import certifi

    from secrets_app.backends import vault

    settings.VAULT_CACERT = certifi.where()  # public CAs: OpenBao's own is not among them
    vault.reset_client()
    response = serve(("GET", "/api/v1/secrets/read/tls", headers))[0]
    assert response.status_code == 503
    failure = AuditLog.objects.filter(event_type="secrets.read").latest("id")
    assert (failure.success, failure.error_message) == (
        False,
        "BackendUnavailable: vault is unreachable (SSLError)",
    )


def test_no_reference_to_the_value_outlives_the_answer(secret, make_agent, monkeypatch):
    """After the answer, the garbage collector finds no referrer of the value but this test;
    the sealed value's plaintext buffer (ours) is zeroed."""
    _, public = generate_keypair()
    _, token = make_agent(grants=["read/*"], public_key=public)
    canary = "canary-" + uuid.uuid4().hex  # one str object, made here
    given = [canary]
    monkeypatch.setattr(services, "read_value", lambda secret, version: given.pop())
    buffers: list[bytearray] = []
    real_seal = reading.seal

    def seal(plaintext, key, context):
        buffers.append(plaintext)
        return real_seal(plaintext, key, context)

    monkeypatch.setattr(reading, "seal", seal)
    headers = {"Host": "localhost", "Authorization": f"Bearer {token}"}
    response = serve(("GET", "/api/v1/secrets/read/key", headers))[0]
    assert response.status_code == 200
    gc.collect()
    here = sys._getframe()
    holders = [r for r in gc.get_referrers(canary) if r is not here and r is not given]
    assert holders == []
    assert buffers
    assert all(b == bytearray(len(b)) for b in buffers)


def test_the_lifespan_opens_the_pool_and_closes_it():
    async def go():
        async with LifespanManager(application):
            pooled = reading._pooled
            expected = connection.vendor == "postgresql"
            assert (pooled is not None) == expected
        assert reading._pooled is None
        return pooled

    pooled = asyncio.run(go())
    if pooled is not None:
        assert pooled.pool.closed


@pytest.mark.postgres
def test_the_pool_takes_the_role_django_assumes(settings):
    """``OPTIONS["assume_role"]``: Django sets the role on its own connections; the read's pool
    does the same on each of its, so a read never runs with more than the site's role."""
    import os
    from urllib.parse import urlsplit

    from tests.fixtures.services import needs_project_services

    site_url = os.environ.get("FOUNDATION_PG_SITE_URL")
    if not site_url:
        needs_project_services("no FOUNDATION_PG_SITE_URL: scripts/services makes the site role")
    role = urlsplit(site_url).username
    options = settings.DATABASES["default"].setdefault("OPTIONS", {})
    options["assume_role"] = role

    async def go():
        await reading.start()
        try:
            async with reading._pooled.pool.connection() as conn:
                cursor = await conn.execute("SELECT current_user")
                return (await cursor.fetchone())[0]
        finally:
            await reading.stop()

    try:
        assert asyncio.run(go()) == role
    finally:
        options.pop("assume_role")


def test_the_operators_prepare_threshold_is_kept(settings):
    options = settings.DATABASES["default"].setdefault("OPTIONS", {})
    assert reading.pool_settings()[1] is True  # prepared at once by default
    options["prepare_threshold"] = None  # behind PgBouncer in transaction mode
    try:
        params, prepare = reading.pool_settings()
        assert prepare is None
        assert params["autocommit"] is True
    finally:
        options.pop("prepare_threshold")


def test_every_middleware_is_accounted_for_by_the_lean_route():
    """The lean route skips Django's middleware: each one must say what it means for a read
    (``secrets_app.asgi.MIDDLEWARE_ACCOUNTED``), so a middleware added later cannot be
    silently skipped on the agents' most frequent request."""
    missing = [m for m in django_settings.MIDDLEWARE if m not in MIDDLEWARE_ACCOUNTED]
    assert missing == [], f"say in MIDDLEWARE_ACCOUNTED what the lean route does for {missing}"
    stale = [m for m in MIDDLEWARE_ACCOUNTED if m not in django_settings.MIDDLEWARE]
    assert stale == []
