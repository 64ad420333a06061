"""Each agent's own Redis user: provisioned with the agent, printed in its environment, and
ended at once when the agent is disabled, deleted or given new credentials."""

from __future__ import annotations

import subprocess
from io import StringIO

import pytest
import redis
from django.conf import settings as django_settings
from django.core.management import call_command
from django.urls import reverse

from agents_app.models import Agent
from agents_app.services import agent_environment, create_agent
from agents_app.wire import provision
from foundation_client.protocol import AGENTS, acl_user, inbox
from foundation_client.testing import is_cluster, sync_client
from foundation_core.redis_client import get_wire

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _remove_users():
    yield
    for name in Agent.objects.values_list("name", flat=True):
        get_wire().execute_command("ACL", "DELUSER", acl_user(name))
        get_wire().srem(AGENTS, name)


def environment(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if line and line[0] != "#")


def new_agent(name: str) -> dict[str, str]:
    """What ``create_agent`` does and prints, without the grants (secrets_app's)."""
    agent, credentials = create_agent(name, actor="test")
    provision(agent)
    return dict(agent_environment(agent, credentials))


def cli(url: str, *command: str) -> str:
    """redis-cli as an operator would run it with the printed URL (-c on a cluster)."""
    flags = ["-c"] if is_cluster(url) else []
    url = url.replace("+cluster://", "://", 1)
    done = subprocess.run(
        ["/usr/bin/redis-cli", *flags, "-u", url, "--no-auth-warning", *command],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return done.stdout + done.stderr


def test_the_printed_environment_is_all_an_agent_needs(settings):
    env = new_agent("wire_a")
    assert set(env) == {
        "FOUNDATION_AGENT_NAME",
        "FOUNDATION_AGENT_TOKEN",
        "FOUNDATION_API_URL",
        "FOUNDATION_REDIS_URL",
        "FOUNDATION_SITE_PUBLIC_KEY",
    }
    assert env["FOUNDATION_AGENT_NAME"] == "wire_a"
    assert env["FOUNDATION_API_URL"] == settings.AGENTS_API_URL
    scheme = django_settings.AGENTS_REDIS_PUBLIC_URL.partition("://")[0]
    assert env["FOUNDATION_REDIS_URL"].startswith(f"{scheme}://{acl_user('wire_a')}:")
    assert get_wire().sismember(AGENTS, "wire_a")
    from foundation_client import ClientSettings
    from foundation_core.signing import site_public_key

    assert env["FOUNDATION_SITE_PUBLIC_KEY"] == site_public_key()
    client = ClientSettings.from_env(env)
    assert (client.agent_name, client.agent_token) == ("wire_a", env["FOUNDATION_AGENT_TOKEN"])
    assert len(client.site_public_keys()) == 1


def test_with_its_url_redis_cli_cannot_read_another_inbox_nor_publish():
    a, b = new_agent("wire_a"), new_agent("wire_b")
    get_wire().xadd(inbox("wire_b", "wire_b"), {"e": "{}"})
    url = a["FOUNDATION_REDIS_URL"]
    assert "NOPERM" in cli(url, "XRANGE", inbox("wire_b", "wire_b"), "-", "+")
    assert "NOPERM" in cli(url, "PUBLISH", "fdn:sys:notices:secrets", "{}")
    assert "PONG" in cli(url, "PING")
    assert "NOPERM" in cli(
        b["FOUNDATION_REDIS_URL"], "XADD", inbox("wire_b", "wire_a"), "*", "e", "x"
    )


def test_disabling_an_agent_ends_its_open_connections(django_capture_on_commit_callbacks):
    env = new_agent("wire_a")
    live = sync_client(env["FOUNDATION_REDIS_URL"])
    assert live.ping()
    agent = Agent.objects.get(name="wire_a")
    agent.is_active = False
    with django_capture_on_commit_callbacks(execute=True):
        agent.save()
    with pytest.raises(redis.RedisError):
        live.ping()
    with pytest.raises(redis.AuthenticationError):
        sync_client(env["FOUNDATION_REDIS_URL"]).ping()
    assert not get_wire().sismember(AGENTS, "wire_a")
    agent.is_active = True
    with django_capture_on_commit_callbacks(execute=True):
        agent.save()
    assert sync_client(env["FOUNDATION_REDIS_URL"]).ping()


def test_deleting_an_agent_removes_its_user(django_capture_on_commit_callbacks):
    env = new_agent("wire_a")
    live = sync_client(env["FOUNDATION_REDIS_URL"])
    assert live.ping()
    with django_capture_on_commit_callbacks(execute=True):
        Agent.objects.get(name="wire_a").delete()
    with pytest.raises(redis.RedisError):
        live.ping()
    assert get_wire().execute_command("ACL", "GETUSER", acl_user("wire_a")) is None


def test_new_credentials_from_the_admin_end_the_old_ones(
    admin_client, django_capture_on_commit_callbacks
):
    env = new_agent("wire_a")
    live = sync_client(env["FOUNDATION_REDIS_URL"])
    assert live.ping()
    agent = Agent.objects.get(name="wire_a")
    with django_capture_on_commit_callbacks(execute=True):
        page = admin_client.post(
            reverse("admin:agents_app_agent_regenerate_token", args=[agent.pk])
        )
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    html = page.content.decode()
    start = html.index('id="agent-environment"')
    block = html[html.index(">", start) + 1 : html.index("</textarea>", start)]
    fresh = environment(block.replace("&#x27;", "'"))
    assert fresh["FOUNDATION_REDIS_URL"] != env["FOUNDATION_REDIS_URL"]
    with pytest.raises(redis.RedisError):
        live.ping()
    with pytest.raises(redis.AuthenticationError):
        sync_client(env["FOUNDATION_REDIS_URL"]).ping()
    assert sync_client(fresh["FOUNDATION_REDIS_URL"]).ping()


def test_an_agent_added_in_the_admin_gets_its_environment_once(
    admin_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        page = admin_client.post(
            reverse("admin:agents_app_agent_add"),
            {
                "name": "wire_admin",
                "description": "",
                "is_active": "on",
                "public_key": "",
                "grants-TOTAL_FORMS": "0",
                "grants-INITIAL_FORMS": "0",
            },
        )
    assert page.status_code == 200
    html = page.content.decode()
    assert "://agent-wire_admin:" in html
    start = html.index("FOUNDATION_REDIS_URL=") + len("FOUNDATION_REDIS_URL=")
    url = html[start : html.index("\n", start)]
    assert sync_client(url).ping()


def test_provision_wire_brings_users_back_after_redis_forgot_them():
    env = new_agent("wire_a")
    get_wire().execute_command("ACL", "DELUSER", acl_user("wire_a"))  # a restart without a file
    with pytest.raises(redis.AuthenticationError):
        sync_client(env["FOUNDATION_REDIS_URL"]).ping()
    err = StringIO()
    call_command("provision_wire", stdout=StringIO(), stderr=err)
    assert "provisioned 1 agent(s)" in err.getvalue()
    assert sync_client(env["FOUNDATION_REDIS_URL"]).ping()


def test_agents_from_before_get_credentials_from_provision_wire():
    agent, _ = create_agent("legacy", actor="test")
    Agent.objects.filter(pk=agent.pk).update(redis_password_hash="")  # as the migration leaves it
    err, out = StringIO(), StringIO()
    call_command("provision_wire", stdout=out, stderr=err)
    assert "run with --issue-missing" in err.getvalue()
    call_command("provision_wire", "--issue-missing", stdout=out, stderr=err)
    env = environment(out.getvalue())
    assert env["FOUNDATION_AGENT_NAME"] == "legacy"
    assert sync_client(env["FOUNDATION_REDIS_URL"]).ping()


def test_the_served_protocol_versions_are_published_where_every_agent_reads_them():
    from agents_app.wire import SERVED_PROTOCOL_VERSIONS
    from foundation_client.protocol import PROTOCOL_KEY, decode_served

    env = new_agent("wire_a")  # provisioning publishes them, as the recorder does every few s
    agent = sync_client(env["FOUNDATION_REDIS_URL"])
    assert decode_served(agent.get(PROTOCOL_KEY)) == SERVED_PROTOCOL_VERSIONS
    with pytest.raises(redis.exceptions.NoPermissionError):
        agent.set(PROTOCOL_KEY, '{"min": 1, "max": 99}')
