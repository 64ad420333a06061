"""An agent's SecretsClient against the live site, real Redis and real OpenBao.

Every client here pins the site's public key, so every answer it takes is checked as in production.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import timedelta

import django_rq
import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from audit_app.models import AuditLog
from foundation_client import (
    AiohttpTransport,
    ClientSettings,
    SecretsClient,
    SecretUnavailable,
    generate_keypair,
)
from foundation_core import signing
from secrets_app import services
from secrets_app.jobs import rotate_due_secrets
from secrets_app.models import SecretMetadata

pytestmark = pytest.mark.django_db(transaction=True)


def client_settings(live_server, token: str) -> ClientSettings:
    return ClientSettings(
        agent_name="ai_manager",
        api_url=live_server.url,
        redis_url=django_settings.REDIS_URL,
        agent_token=token,
        site_public_key=signing.site_public_key(),
    )


@pytest.fixture(autouse=True)
def _empty_queue(queue):
    """Every test here runs jobs: none left over from another test."""


async def in_thread(function, *args, **kwargs):
    """``asyncio.to_thread`` for site code: the thread's database connection goes back to the
    pool when it is done (the test database cannot be dropped while one is out)."""
    from django.db import connection

    def run():
        try:
            return function(*args, **kwargs)
        finally:
            connection.close()

    return await asyncio.to_thread(run)


def run_rotation_job(rq_burst):
    """Enqueue the scheduled job and let a real RQ worker run it, as in production."""
    queue = django_rq.get_queue("default")
    job = queue.enqueue(rotate_due_secrets)
    rq_burst(queue)
    job.refresh()
    assert job.get_status() == "finished", getattr(job.latest_result(), "exc_string", "")
    return job.return_value()


def test_the_sites_version_cache_bridges_an_openbao_outage(
    live_server, make_agent, private_openbao, admin_user
):
    services.create_secret("db_password", "pw-site-cached", actor=admin_user, backend="vault")
    _, token = make_agent(grants=["db_password"])

    async def scenario() -> None:
        async with SecretsClient(client_settings(live_server, token), ttl=0) as client:
            assert await client.get("db_password") == "pw-site-cached"
            await asyncio.to_thread(private_openbao.stop)
            assert await client.get("db_password") == "pw-site-cached"

    asyncio.run(scenario())
    assert AuditLog.objects.filter(event_type="secrets.read", success=True).count() == 2


def test_a_rotation_reaches_a_running_agent_within_a_second(
    live_server, make_agent, vault_prefix, admin_user, rq_burst
):
    secret = services.create_secret(
        "rotating_key",
        "value-before",
        actor=admin_user,
        backend="vault",
        provider="internal",
        rotation_policy_days=30,
    )
    SecretMetadata.objects.filter(pk=secret.pk).update(
        last_rotated=timezone.now() - timedelta(days=31)
    )
    _, token = make_agent(grants=["rotating_key"])

    async def scenario() -> tuple[str, float]:
        # A long TTL: only the rotation notice can make the client fetch again.
        async with SecretsClient(client_settings(live_server, token), ttl=3600) as client:
            assert await client.get("rotating_key") == "value-before"
            report = await in_thread(run_rotation_job, rq_burst)
            assert report == {"rotated": ["rotating_key"], "failed": [], "reminded": []}
            rotated_at = time.monotonic()
            while True:
                value = await client.get("rotating_key")
                if value != "value-before":
                    return value, time.monotonic() - rotated_at
                assert time.monotonic() - rotated_at < 1.0, "the agent still holds the old value"
                await asyncio.sleep(0.005)

    value, delay = asyncio.run(scenario())
    print(f"rotation reached the running agent in {delay * 1000:.1f} ms")
    secret.refresh_from_db()
    assert value == services.read_value(secret)
    assert secret.current_version == 2
    assert delay < 1.0
    assert AuditLog.objects.filter(event_type="secrets.rotate", success=True).count() == 1


def test_a_failed_rotation_is_retried_on_the_next_run(
    settings, live_server, admin_user, rq_burst, flaky_rotator
):
    secret = services.create_secret(
        "flaky_key",
        "keeps-serving",
        actor=admin_user,
        backend="local",
        provider="flaky",
        rotation_policy_days=1,
    )
    SecretMetadata.objects.filter(pk=secret.pk).update(
        last_rotated=timezone.now() - timedelta(days=2)
    )
    assert run_rotation_job(rq_burst) == {"rotated": [], "failed": ["flaky_key"], "reminded": []}
    assert services.read_value(secret) == "keeps-serving"
    settings.SECRETS_ROTATORS = {"flaky": "secrets_app.rotators.random_urlsafe"}  # mended
    assert run_rotation_job(rq_burst) == {"rotated": ["flaky_key"], "failed": [], "reminded": []}
    assert run_rotation_job(rq_burst) == {"rotated": [], "failed": [], "reminded": []}
    outcomes = list(
        AuditLog.objects.filter(event_type="secrets.rotate")
        .order_by("id")
        .values_list("success", flat=True)
    )
    assert outcomes == [False, True]


def test_openbao_stopping_mid_run_serves_stale_values_then_fails_cleanly(
    settings, live_server, make_agent, private_openbao, admin_user
):
    # The site's own version cache would bridge the outage; here only the client's may.
    settings.SECRETS_SITE_CACHE_SECONDS = 0
    services.create_secret("db_password", "pw-cached", actor=admin_user, backend="vault")
    _, token = make_agent(grants=["db_password"])

    # The client's windows are crossed on a clock of the test's own: however long OpenBao takes
    # to stop, the stale read falls inside the window and the last read past it.
    now = [1000.0]

    def clock() -> float:
        return now[0]

    async def scenario() -> None:
        settings = client_settings(live_server, token)
        async with SecretsClient(settings, ttl=10, stale_if_error=60, clock=clock) as client:
            assert await client.get("db_password") == "pw-cached"
            await asyncio.to_thread(private_openbao.stop)
            now[0] += 10  # past the TTL: the site is asked, and fails
            assert await client.get("db_password") == "pw-cached"  # stale, inside the window
            now[0] += 60  # past the stale window
            with pytest.raises(SecretUnavailable, match="the secret store is unavailable"):
                await client.get("db_password")
            # A second agent with nothing cached fails at once, without a traceback.
            async with SecretsClient(settings) as fresh:
                with pytest.raises(SecretUnavailable):
                    await fresh.get("db_password")

    asyncio.run(scenario())
    failures = AuditLog.objects.filter(event_type="secrets.read", success=False)
    assert failures.count() >= 3
    assert all("unreachable" in (row.error_message or "") for row in failures)
    assert AuditLog.objects.filter(event_type="secrets.read", success=True).count() == 1


class ReplayingMiddle(AiohttpTransport):
    """A man in the middle on the agent's HTTP: once it has seen an answer for a name, it serves
    that answer again instead of asking the site."""

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__(base_url, token, timeout=5.0)
        self.seen: dict[str, tuple[int, dict]] = {}

    async def get_json(self, path: str) -> tuple[int, dict]:
        name = path.split("?")[0]
        if name not in self.seen:
            self.seen[name] = await super().get_json(path)
        return self.seen[name]


def test_an_answer_replayed_over_http_is_refused(live_server, make_agent, admin_user):
    services.create_secret("replayed_key", "genuine", actor=admin_user, backend="local")
    private, public = generate_keypair()
    _, token = make_agent(grants=["replayed_key"], public_key=public)
    settings = dataclasses.replace(client_settings(live_server, token), private_key=private)

    async def scenario() -> None:
        middle = ReplayingMiddle(live_server.url, token)
        async with SecretsClient(settings, transport=middle, ttl=0, stale_if_error=0) as client:
            assert await client.get("replayed_key") == "genuine"
            with pytest.raises(SecretUnavailable, match="replayed answer"):
                await client.get("replayed_key")
        await middle.close()

    asyncio.run(scenario())
    # The site answered once; the refusal happened in the agent, where the replay arrived.
    assert AuditLog.objects.filter(event_type="secrets.read", success=True).count() == 1


def test_a_secret_deleted_and_created_anew_is_read_at_version_1_after_the_notice(
    live_server, make_agent, admin_user
):
    secret = services.create_secret("phoenix", "first", actor=admin_user, backend="local")
    services.set_value(secret, "second", actor=admin_user)
    _, token = make_agent(grants=["phoenix"])

    async def scenario() -> None:
        async with SecretsClient(client_settings(live_server, token), ttl=3600) as client:
            assert await client.get("phoenix") == "second"
            assert client.cached_version("phoenix") == 2
            await in_thread(services.delete_secret, secret, actor=admin_user)
            deadline = time.monotonic() + 10  # a notice takes milliseconds; this only bounds a hang
            while client.cached_version("phoenix") is not None:  # the deletion notice
                assert time.monotonic() < deadline, "the deletion notice did not arrive"
                await asyncio.sleep(0.005)
            await in_thread(
                services.create_secret, "phoenix", "reborn", actor=admin_user, backend="local"
            )
            assert await client.get("phoenix") == "reborn"
            assert client.cached_version("phoenix") == 1

    asyncio.run(scenario())
