"""Finding 9 of the review, across processes: a revoked token, a removed grant, a disabled
agent and a deleted secret version are forgotten at once by another site process whose caches
were warm (they used to live on there for up to 5 s, or, for values, until the TTL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from agents_app.services import issue_credentials
from secrets_app import services
from secrets_app.grants import create_agent
from secrets_app.models import SecretGrant

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent

# Another site process: answers agents' reads (the one read path, its token and grant caches
# and its value cache warm) or says whether it holds a secret's version, on demand.
OTHER = """
import json, sys
import django
django.setup()
from asgiref.sync import async_to_sync
from foundation_core import notices
from secrets_app import reading, value_cache

notices.start()
notices.subscribed.wait(10)  # its first subscription forgets everything: before anything is kept
for line in sys.stdin:
    command, *args = line.split()
    if command == "read":  # a read as it arrives: token, name
        asked = reading.ReadRequest(args[0], args[1], None, "127.0.0.1", "other-process")
        got = async_to_sync(reading.serve)(asked, reading.InThread())
        answer = [got.status, got.body.get("value") or got.body.get("detail")]
    else:
        answer = value_cache.get(int(args[0]), int(args[1])) is not None
    print(json.dumps(answer), flush=True)
"""


class OtherProcess:
    def __init__(self) -> None:
        settings_dict = connection.settings_dict
        if connection.vendor == "postgresql":
            url = (
                f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:"
                f"{settings_dict['PORT']}/{settings_dict['NAME']}"
            )
        else:
            url = f"sqlite:///{settings_dict['NAME']}"
        env = dict(
            os.environ,
            DATABASE_URL=url,
            AGENT_AUTH_CACHE_SECONDS="60",  # long: only a notice can make it forget
            SECRETS_SITE_CACHE_SECONDS="60",
            FOUNDATION_ENV_FILE="",
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", OTHER],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, *words: object) -> object:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(" ".join(map(str, words)) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def other():
    process = OtherProcess()
    yield process
    process.close()


def eventually(check, timeout: float = 2.0) -> object:
    """The other process's answer once it has changed (a notice takes milliseconds)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def test_a_removed_grant_a_disabled_agent_and_a_new_token_are_forgotten_at_once(other, admin_user):
    """The other process answers from its caches (60 s): only the notices make it forget."""
    for name in ("prod/key", "dev/key"):
        services.create_secret(name, f"{name}-value", actor=admin_user, backend="local")
    agent, credentials = create_agent("ai_manager", actor="setup", grants=["prod/*", "dev/*"])
    token = credentials.token
    assert other.ask("read", token, "prod/key") == [200, "prod/key-value"]
    assert other.ask("read", token, "dev/key") == [200, "dev/key-value"]
    SecretGrant.objects.get(pattern="prod/*").delete()
    refused = [403, "no grant for this secret"]
    assert eventually(lambda: other.ask("read", token, "prod/key") == refused)
    assert other.ask("read", token, "dev/key") == [200, "dev/key-value"]
    agent.is_active = False
    agent.save()
    disabled = [403, "agent is disabled"]
    assert eventually(lambda: other.ask("read", token, "dev/key") == disabled)
    agent.is_active = True
    agent.save()
    issue_credentials(agent, actor="setup")
    assert eventually(lambda: other.ask("read", token, "dev/key") == [401, "Unauthorized"])


def test_a_deleted_secret_and_its_older_versions_leave_the_other_process(other, admin_user):
    _, credentials = create_agent("reader", actor="setup", grants=["cached_key"])
    token = credentials.token
    secret = services.create_secret("cached_key", "one", actor=admin_user, backend="local")
    assert other.ask("read", token, "cached_key") == [200, "one"]
    assert other.ask("cached", secret.pk, 1) is True
    services.set_value(secret, "two", actor=admin_user)
    assert eventually(lambda: other.ask("cached", secret.pk, 1) is False)
    assert other.ask("read", token, "cached_key") == [200, "two"]
    services.delete_secret(secret, actor=admin_user)
    assert eventually(lambda: other.ask("cached", secret.pk, 2) is False)
