"""Finding 3 of the review: nothing limited unauthenticated requests (each wrote an audit row of
up to 1.4 KB, and the table may not be pruned), and the admin's log-in had no lock-out."""

from __future__ import annotations

import asyncio
from io import StringIO

import httpx
import pytest
from django.core.management import call_command
from django.test import Client

from audit_app.models import AuditLog, SuspiciousActivity
from foundation_core import ratelimit
from foundation_site.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

FLOODER = "198.51.100.66"
NOT_A_TOKEN = "fdn_not-a-token"


def flood(count: int, address: str, token: str = NOT_A_TOKEN) -> list[httpx.Response]:
    """``count`` reads through the served ASGI application, a few at a time."""

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=application, client=(address, 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            answers: list[httpx.Response] = []
            for start in range(0, count, 50):
                batch = [
                    client.get(
                        "/api/v1/secrets/prod/db?nonce=flood-nonce-0000001",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    for _ in range(min(50, count - start))
                ]
                answers += await asyncio.gather(*batch)
            return answers

    return asyncio.run(go())


@pytest.mark.postgres  # 50 requests at once: SQLite locks its table
def test_a_flood_of_bad_tokens_is_refused_with_bounded_audit_rows_and_counted_in_full():
    answers = flood(2000, FLOODER)
    statuses = [a.status_code for a in answers]
    # The limit is 20 failures a minute per address (RATELIMIT_API_FAILURES): from the 21st on,
    # every answer is 429 with Retry-After.
    assert statuses.count(401) == 20
    assert statuses.count(429) == 1980
    refused = next(a for a in answers if a.status_code == 429)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["retry_after"] == int(refused.headers["Retry-After"])
    assert AuditLog.objects.count() == 20
    # When the window has passed (here: cleared), one summary row for the refused ones.
    assert ratelimit.flush_refused() == 0  # still refusing: no summary yet
    ratelimit.clear("api", FLOODER)
    assert ratelimit.flush_refused() == 1
    assert AuditLog.objects.count() == 21  # at most 100, by design
    summary = AuditLog.objects.get(action="rate_limited")
    assert (summary.ip_address, summary.metadata["suppressed"]) == (FLOODER, 1980)
    (row,) = SuspiciousActivity.objects.filter(ip_address=FLOODER)
    assert (row.actor, row.failed_attempts) == ("(unknown agent)", 2000)


@pytest.mark.postgres  # 50 requests at once: SQLite locks its table
def test_an_agent_with_a_valid_token_is_not_refused_for_its_addresss_failures(make_agent):
    _, token = make_agent(grants=["prod/*"])
    flood(30, FLOODER)
    (answer,) = flood(1, FLOODER, token)
    assert answer.status_code == 404  # its own answer: no such secret, not 429


@pytest.mark.postgres  # 50 requests at once: SQLite locks its table
def test_the_agent_read_quota_is_off_by_default_and_per_agent_when_set(settings, make_agent):
    _, token = make_agent(grants=["prod/*"])
    assert {a.status_code for a in flood(60, FLOODER, token)} == {404}
    settings.RATELIMIT_AGENT_READS = "5/minute"
    statuses = [a.status_code for a in flood(8, FLOODER, token)]
    assert sorted(statuses) == [404] * 5 + [429] * 3  # answered at once: in any order


def log_in(client: Client, username: str, password: str, address: str = "203.0.113.50"):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def test_the_admin_log_in_locks_a_user_name_after_five_failures(django_user_model):
    django_user_model.objects.create_superuser("boss", "b@example.com", "right-password-1")
    client = Client()
    for _ in range(5):
        assert b"correct username and password" in log_in(client, "boss", "wrong").content
    # Locked: even the right password is refused, without being checked, and says why.
    locked = log_in(client, "boss", "right-password-1")
    assert locked.status_code == 200
    assert b"Too many failed log-ins" in locked.content
    for _ in range(50):
        log_in(client, "boss", "wrong")
    failed = AuditLog.objects.filter(event_type="auth.login", success=False)
    assert failed.count() == 5  # the rest counted for one summary row
    # From another address too: the lock is on the user name.
    assert b"Too many failed log-ins" in log_in(client, "boss", "x", "203.0.113.99").content
    # An admin lifts it.
    out = StringIO()
    call_command("unlock_login", "--user", "boss", stdout=out)
    assert "unlocked login-user boss" in out.getvalue()
    assert log_in(client, "boss", "right-password-1").status_code == 302
    assert AuditLog.objects.filter(event_type="auth.unlock").count() == 1
    assert ratelimit.flush_refused() == 1
    summary = AuditLog.objects.get(action="rate_limited")
    assert (summary.actor, summary.metadata["suppressed"]) == ("boss", 52)


def test_an_address_trying_many_user_names_is_locked_too(django_user_model):
    client = Client()
    for n in range(30):  # RATELIMIT_LOGIN_ADDRESS_FAILURES
        log_in(client, f"guess{n}", "wrong", "203.0.113.77")
    assert b"Too many failed log-ins" in log_in(client, "guess99", "x", "203.0.113.77").content
    assert b"correct username" in log_in(client, "guess99", "x", "203.0.113.78").content
