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

from agents_app.models import SecretGrant
from agents_app.services import create_agent, issue_credentials
from secrets_app import services

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent

# Another site process: authenticates a token, or reads a secret's cached version, on demand.
OTHER = """
import json, sys
import django
django.setup()
from agents_app.services import authenticate
from foundation_site import notices
from secrets_app import services, value_cache
from agents_app.models import Agent

notices.ensure_listening()
notices.subscribed.wait(10)  # its first subscription forgets everything: before anything is kept
for line in sys.stdin:
    command, *args = line.split()
    if command == "auth":
        agent = authenticate(args[0])
        answer = None if agent is None else {
            "active": agent.is_active,
            "grants": sorted(g.pattern for g in agent.grants.all()),
        }
    elif command == "read":  # as the agent, through the site's value cache
        agent = Agent.objects.get(name=args[0])
        answer = services.read_for_agent(agent, args[1])[0]
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


def test_a_removed_grant_a_disabled_agent_and_a_new_token_are_forgotten_at_once(other):
    agent, credentials = create_agent("ai_manager", actor="setup", grants=["prod/*", "dev/*"])
    token = credentials.token
    assert other.ask("auth", token) == {"active": True, "grants": ["dev/*", "prod/*"]}
    SecretGrant.objects.get(pattern="prod/*").delete()
    assert eventually(lambda: other.ask("auth", token) == {"active": True, "grants": ["dev/*"]})
    agent.is_active = False
    agent.save()
    assert eventually(lambda: other.ask("auth", token) == {"active": False, "grants": ["dev/*"]})
    issue_credentials(agent, actor="setup")
    assert eventually(lambda: other.ask("auth", token) is None)


def test_a_deleted_secret_and_its_older_versions_leave_the_other_process(other, admin_user):
    create_agent("reader", actor="setup", grants=["cached_key"])
    secret = services.create_secret("cached_key", "one", actor=admin_user, backend="local")
    assert other.ask("read", "reader", "cached_key") == "one"
    assert other.ask("cached", secret.pk, 1) is True
    services.set_value(secret, "two", actor=admin_user)
    assert eventually(lambda: other.ask("cached", secret.pk, 1) is False)
    assert other.ask("read", "reader", "cached_key") == "two"
    services.delete_secret(secret, actor=admin_user)
    assert eventually(lambda: other.ask("cached", secret.pk, 2) is False)
