"""The agent API's granted read on the event loop (``secrets_app.fast_read``), against real
PostgreSQL and OpenBao: the same answer and the same audit row as the thread's path; a refusal
or an unreachable Vault handed to that path before anything is written; a Vault that fails
after the grant's row handed over after it (two rows, the outcome's last)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from audit_app.models import AuditLog
from foundation_client import generate_keypair
from foundation_client.protocol import (
    SecretAnswer,
    load_site_public_key,
    open_sealed,
    sealing_context,
)
from foundation_site.asgi import application
from secrets_app import fast_read, services, signing
from secrets_app.backends import vault

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _every_cache_off(settings):
    settings.AGENT_AUTH_CACHE_SECONDS = 0
    settings.SECRETS_SITE_CACHE_SECONDS = 0


@pytest.fixture
def handed(monkeypatch):
    """Which reads the async path handed to the thread's."""
    calls: list[str] = []
    original = fast_read.logger.info

    def spy(message: str, *args: object) -> None:
        calls.append(str(args[0]))
        original(message, *args)

    monkeypatch.setattr(fast_read.logger, "info", spy)
    return calls


def read(name: str, token: str | None, nonce: str = "fast-nonce-0000000001") -> httpx.Response:
    headers = {"Host": "localhost", "User-Agent": "fast-test/1"}
    if token:
        headers["Authorization"] = f"Bearer {token}"

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=application, client=("198.51.100.9", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.get(f"/api/v1/secrets/{name}?nonce={nonce}", headers=headers)

    return asyncio.run(go())


@pytest.fixture
def secret(admin_user, vault_prefix):
    return services.create_secret("fast/key", "fast-value", actor=admin_user, backend="vault")


def test_a_granted_read_is_answered_on_the_loop_with_one_row(secret, make_agent, handed):
    _, token = make_agent(grants=["fast/*"])
    services.set_value(secret, "fast-value-2", actor="test")
    response = read("fast/key", token)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert SecretAnswer.from_body(body).verify([load_site_public_key(signing.site_public_key())])
    assert (body["value"], body["version"], body["nonce"]) == (
        "fast-value-2",
        2,
        "fast-nonce-0000000001",
    )
    assert handed == []  # answered on the loop
    row = AuditLog.objects.get(event_type="secrets.read")
    assert (row.actor, row.resource, row.action, row.success) == (
        "ai_manager",
        "secret:fast/key",
        "read",
        True,
    )
    assert (row.ip_address, row.user_agent, row.metadata) == (
        "198.51.100.9",
        "fast-test/1",
        {"version": 2},
    )
    assert row.created_at is not None


def test_the_row_is_the_one_the_threads_path_writes(secret, make_agent, settings):
    _, token = make_agent(grants=["fast/*"])
    assert read("fast/key", token).status_code == 200
    settings.SECRETS_ASYNC_READS = False
    assert read("fast/key", token).status_code == 200
    fast, thread = AuditLog.objects.filter(event_type="secrets.read").order_by("id")
    fields = ("event_type", "actor", "resource", "action", "ip_address", "user_agent")
    for field in (*fields, "success", "error_message", "metadata"):
        assert getattr(fast, field) == getattr(thread, field), field


def test_a_sealed_read_is_answered_on_the_loop(secret, make_agent, handed):
    private, public = generate_keypair()
    _, token = make_agent(grants=["fast/key"], public_key=public)
    body = read("fast/key", token).json()
    assert "value" not in body
    assert open_sealed(body["sealed"], private, sealing_context("fast/key", 1)) == b"fast-value"
    assert handed == []


@pytest.mark.parametrize(
    ("token", "grants", "name", "status"),
    [
        (None, ["*"], "fast/key", 401),
        ("fdn_bogus", ["*"], "fast/key", 401),
        ("real", ["other"], "fast/key", 403),
        ("real", ["*"], "fast/missing", 404),
    ],
)
def test_refusals_go_to_the_threads_path_and_are_audited_once(
    secret, make_agent, token, grants, name, status
):
    _, real = make_agent(grants=grants)
    response = read(name, real if token == "real" else token)
    assert response.status_code == status
    (row,) = AuditLog.objects.filter(event_type="secrets.read")
    assert row.success is False


def test_a_disabled_agent_is_refused_by_the_threads_path(secret, make_agent, handed):
    agent, token = make_agent(grants=["*"])
    agent.is_active = False
    agent.save()
    assert read("fast/key", token).status_code == 403
    assert "agent is disabled" in AuditLog.objects.get(event_type="secrets.read").error_message


def test_a_local_secret_is_read_by_the_threads_path(admin_user, make_agent, handed):
    services.create_secret("fast/local", "local-value", actor=admin_user, backend="local")
    _, token = make_agent(grants=["*"])
    assert read("fast/local", token).json()["value"] == "local-value"
    assert handed == []  # not a failure: simply not the async path's case
    assert AuditLog.objects.filter(event_type="secrets.read", success=True).count() == 1


def test_a_vault_failure_writes_one_failure_row_and_no_success(
    secret, make_agent, settings, handed
):
    """A read Vault cannot answer is handed over before any row is written; the thread's path
    then fails it, audited once."""
    _, token = make_agent(grants=["*"])
    settings.VAULT_ADDR = "http://127.0.0.1:9"  # nothing listens
    vault.reset_client()
    response = read("fast/key", token)
    assert response.status_code == 503
    assert "secret-value" not in response.text
    (row,) = AuditLog.objects.filter(event_type="secrets.read")
    assert row.success is False
    assert "unreachable" in (row.error_message or "")
    vault.reset_client()


def test_a_token_replaced_since_the_snapshot_is_read_again_with_the_new_one(
    secret, make_agent, monkeypatch, handed
):
    """A 403 from Vault (the token renewed or replaced since the snapshot): the snapshot is
    taken again and the read asked once more, on the loop, still one row."""
    _, token = make_agent(grants=["*"])
    real = vault.access
    snapshots = iter(["not-a-token"])

    def renewed() -> vault.Access:
        good = real()
        return vault.Access(**{**good.__dict__, "token": next(snapshots, good.token)})

    monkeypatch.setattr(vault, "access", renewed)
    assert read("fast/key", token).json()["value"] == "fast-value"
    assert handed == []
    assert AuditLog.objects.filter(event_type="secrets.read").count() == 1


def test_a_token_vault_keeps_refusing_goes_to_the_threads_path_after_its_row(
    secret, make_agent, monkeypatch
):
    """The read was granted and its row written while Vault was asked; Vault refused the
    site's token: the threads' path reads with its own client, and writes the outcome's row
    after the grant's (docs/secrets.md, "Two rows for one read")."""
    _, token = make_agent(grants=["*"])
    real = vault.access

    def stale() -> vault.Access:
        return vault.Access(**{**real().__dict__, "token": "not-a-token"})

    monkeypatch.setattr(vault, "access", stale)
    assert read("fast/key", token).json()["value"] == "fast-value"
    rows = AuditLog.objects.filter(event_type="secrets.read").order_by("id")
    assert [row.success for row in rows] == [True, True]


def test_a_secret_vault_lost_is_reported_after_the_grants_row(secret, make_agent, settings, handed):
    """Vault lost the secret (restored from an older snapshot): the grant's row, then the
    threads' path's refusal, which tells the agent an administrator must reconcile."""
    _, token = make_agent(grants=["*"])
    vault.client().secrets.kv.v2.delete_metadata_and_all_versions(
        path=vault.path_for(secret), mount_point=settings.SECRETS_VAULT_MOUNT
    )
    response = read("fast/key", token)
    assert response.status_code == 503
    assert "administrator must reconcile" in response.json()["detail"]
    grant, outcome = AuditLog.objects.filter(event_type="secrets.read").order_by("id")
    assert grant.success is True
    assert outcome.success is False
    assert "vault holds no version" in outcome.error_message
    assert handed == ["fast/key"]  # after its row


def test_off_on_request(settings, secret, make_agent, handed):
    settings.SECRETS_ASYNC_READS = False
    assert not fast_read.enabled()
    settings.SECRETS_ASYNC_READS = True
    settings.RATELIMIT_AGENT_READS = "100/minute"  # the quota is the thread's to count
    assert not fast_read.enabled()


def test_tls_to_vault_verifies_as_hvac_is_told(tmp_path):
    """The async read's TLS: the CA hvac uses (a file, a directory, certifi's by default), and
    no verification only where hvac was told so."""
    import shutil
    import ssl

    import certifi

    def access(verify: str | bool) -> vault.Access:
        return vault.Access("https://vault.example", "t", None, verify, None, True)

    for verify in (True, certifi.where()):
        context = fast_read._tls(access(verify))
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname
    directory = tmp_path / "cas"
    directory.mkdir()
    shutil.copy(certifi.where(), directory / "ca.pem")
    assert fast_read._tls(access(str(directory))).verify_mode == ssl.CERT_REQUIRED
    assert fast_read._tls(access(False)).verify_mode == ssl.CERT_NONE


def test_a_read_whose_audit_fails_is_refused_not_read_twice(secret, make_agent, monkeypatch):
    """Once the insert is on its way the row may be in: the read is refused (503), never
    handed to the thread's path to be read and audited again."""
    from audit_app import services as audit

    _, token = make_agent(grants=["*"])

    async def broken(conn, values, prepare=None):
        raise OSError("the connection dropped after the commit")

    monkeypatch.setattr(audit, "insert_async", broken)
    response = read("fast/key", token)
    assert response.status_code == 503
    assert "fast-value" not in response.text
    assert not AuditLog.objects.filter(event_type="secrets.read").exists()


def test_a_change_during_a_look_up_keeps_its_agent_out_of_the_cache(make_agent, settings):
    from agents_app.services import (
        auth_generation,
        cached_agent,
        forget_agents,
        remember_agent,
    )

    settings.AGENT_AUTH_CACHE_SECONDS = 5
    agent, _ = make_agent()
    generation = auth_generation()
    forget_agents()  # a revocation notice arrives while the look-up runs
    remember_agent("hash", agent, generation)
    assert cached_agent("hash") == (False, None)
    remember_agent("hash", agent, auth_generation())
    assert cached_agent("hash") == (True, agent)


async def _prepared(cursor) -> list[str]:
    """The statements prepared on ``cursor``'s connection, by their first words."""
    await cursor.execute("SELECT statement FROM pg_prepared_statements", prepare=False)
    return sorted(" ".join(row[0].split()[:3]) for row in await cursor.fetchall())


@pytest.mark.parametrize(
    ("threshold", "auth_cache", "prepared"),
    [
        ("unset", 0, ['INSERT INTO "audit_logs"', 'SELECT a."id", a."name",']),
        (
            "unset",
            5,
            ['INSERT INTO "audit_logs"', 'SELECT a."id", a."name",', "SELECT id, storage_backend,"],
        ),
        (None, 0, []),
    ],
    ids=["look-up", "cached-agent", "operator-says-none"],
)
def test_statements_are_prepared_unless_the_operator_says_not(
    secret, make_agent, monkeypatch, settings, threshold, auth_cache, prepared
):
    """The look-up (or, with the agent cached, the secret's row) and the insert are prepared
    at once, each once, unless the operator set ``prepare_threshold`` (None behind PgBouncer in
    transaction mode: nothing prepared)."""
    from django.db import connection

    settings.AGENT_AUTH_CACHE_SECONDS = auth_cache
    options = connection.settings_dict.setdefault("OPTIONS", {})
    if threshold != "unset":
        monkeypatch.setitem(options, "prepare_threshold", threshold)
    _, token = make_agent(grants=["*"])

    async def go() -> list[str]:
        for _ in range(3):
            answer = await fast_read.serve(token, "fast/key", None, "198.51.100.9", "t/1")
            assert answer is not None
            assert answer[0] == 200
        resources = await fast_read._resources()
        (cursor,) = resources.pool.idle
        return await _prepared(cursor)

    assert asyncio.run(go()) == prepared
    assert AuditLog.objects.filter(event_type="secrets.read", success=True).count() == 3


def test_a_failed_insert_drops_its_connection(secret, make_agent, monkeypatch):
    """A prepared insert that fails (a migration changed a column's type, say) would fail on
    that connection every time: the connection is not used again."""
    import psycopg

    from audit_app import services as audit

    _, token = make_agent(grants=["*"])
    real = audit.insert_async
    failures = iter([psycopg.errors.FeatureNotSupported("cached plan must not change result type")])

    async def once_broken(conn, values, prepare=None):
        failure = next(failures, None)
        if failure:
            raise failure
        return await real(conn, values, prepare=prepare)

    monkeypatch.setattr(audit, "insert_async", once_broken)

    async def go() -> tuple[int, int, int]:
        first = await fast_read.serve(token, "fast/key", None, "198.51.100.9", "t/1")
        resources = await fast_read._resources()
        kept = len(resources.pool.idle)
        second = await fast_read.serve(token, "fast/key", None, "198.51.100.9", "t/1")
        assert first is not None
        assert second is not None
        return first[0], kept, second[0]

    assert asyncio.run(go()) == (503, 0, 200)


def test_a_pooler_that_refuses_prepared_statements_turns_preparing_off(
    secret, make_agent, monkeypatch
):
    """PgBouncer in transaction mode without prepared-statement support: the read that met it
    is handed to the threads' path before anything is written, and the loop prepares nothing
    after."""
    import psycopg

    _, token = make_agent(grants=["*"])
    real = fast_read._look_up
    refused = iter([psycopg.errors.InvalidSqlStatementName('prepared statement "_pg3_0"')])

    async def pooler(cursor, token_hash, name, prepare):
        failure = next(refused, None)
        if failure:
            raise failure
        return await real(cursor, token_hash, name, prepare)

    monkeypatch.setattr(fast_read, "_look_up", pooler)

    async def go() -> tuple[object, object, list[str]]:
        first = await fast_read.serve(token, "fast/key", None, "198.51.100.9", "t/1")
        resources = await fast_read._resources()
        second = await fast_read.serve(token, "fast/key", None, "198.51.100.9", "t/1")
        assert second is not None
        assert second[0] == 200
        (cursor,) = resources.pool.idle
        return first, resources.prepare, await _prepared(cursor)

    first, prepare, prepared = asyncio.run(go())
    # None: nothing written, the threads' path answers (the route hands it over).
    assert (first, prepare, prepared) == (None, False, [])
    assert AuditLog.objects.filter(event_type="secrets.read").count() == 1  # the second's


def test_a_loop_whose_connections_cannot_be_set_up_hands_every_read_over(
    secret, make_agent, monkeypatch
):
    _, token = make_agent(grants=["*"])

    async def broken() -> None:
        raise OSError("no database connection parameters")

    monkeypatch.setattr(fast_read, "_resources", broken)
    answer = asyncio.run(fast_read.serve(token, "fast/key", None, "198.51.100.9", "t/1"))
    assert answer is None
    assert not AuditLog.objects.filter(event_type="secrets.read").exists()
