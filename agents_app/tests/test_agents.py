from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from agents_app.models import Agent, SecretGrant, hash_token
from agents_app.services import authenticate
from audit_app.models import AuditLog
from foundation_client import generate_keypair

pytestmark = pytest.mark.django_db


def test_create_agent_prints_the_token_once_and_stores_its_hash():
    out = StringIO()
    call_command("create_agent", "ai_manager", "--grant", "openai_*", "--grant", "db", stdout=out)
    lines = dict(
        line.split("=", 1) for line in out.getvalue().splitlines() if not line.startswith("#")
    )
    token = lines["FOUNDATION_AGENT_TOKEN"]
    agent = Agent.objects.get(name="ai_manager")
    assert token.startswith("fdn_")
    assert agent.token_hash == hash_token(token)
    assert token not in agent.token_hash
    assert sorted(agent.grants.values_list("pattern", flat=True)) == ["db", "openai_*"]
    assert authenticate(token) == agent
    assert AuditLog.objects.get(event_type="agents.create").resource == "agent:ai_manager"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad Name"], "name"),
        (["ok", "--public-key", "not-a-key"], "public_key"),
        (["ok", "--grant", "bad pattern*x"], "pattern"),
    ],
)
def test_create_agent_refuses_bad_input_and_creates_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_agent", *args, stdout=StringIO())
    assert not Agent.objects.exists()
    assert not SecretGrant.objects.exists()


def test_a_public_key_is_accepted():
    _, public = generate_keypair()
    # "=" form: a URL-safe base64 key may start with "-", which argparse would read as an option.
    call_command("create_agent", "sealed_agent", f"--public-key={public}", stdout=StringIO())
    assert Agent.objects.get().public_key == public


def test_grants_match_exact_names_and_prefixes():
    agent = Agent.objects.create(name="a", token_hash="x")
    SecretGrant.objects.create(agent=agent, pattern="openai_api_key")
    SecretGrant.objects.create(agent=agent, pattern="db/*")
    assert agent.may_read("openai_api_key")
    assert not agent.may_read("openai_api_key_2")
    assert agent.may_read("db/primary")
    assert not agent.may_read("dbx")


def test_unknown_and_empty_tokens_do_not_authenticate():
    agent = Agent.objects.create(name="a", token_hash=hash_token("fdn_t"))
    assert authenticate(None) is None
    assert authenticate("") is None
    assert authenticate("fdn_other") is None
    agent.is_active = False
    agent.save()
    assert authenticate("fdn_t") == agent  # returned, so its refusals are audited by name
    assert authenticate("fdn_t").is_active is False


def test_a_token_loads_its_agent_and_grants_in_one_query(django_assert_num_queries):
    agent = Agent.objects.create(name="a", token_hash=hash_token("fdn_t"), public_key="")
    SecretGrant.objects.create(agent=agent, pattern="db/*")
    SecretGrant.objects.create(agent=agent, pattern="openai_api_key")
    Agent.objects.create(name="bare", token_hash=hash_token("fdn_bare"))
    with django_assert_num_queries(1):
        loaded = Agent.for_token_and_secret(hash_token("fdn_t"), None)[0]
        assert loaded is not None
        assert sorted(loaded.grant_patterns or ()) == ["db/*", "openai_api_key"]
        assert loaded.may_read("db/primary")
        assert not loaded.may_read("dbx")
    assert (loaded.pk, loaded.name, loaded.token_hash) == (agent.pk, "a", agent.token_hash)
    bare = Agent.for_token_and_secret(hash_token("fdn_bare"), None)[0]
    assert bare is not None
    assert bare.grant_patterns == ()
    assert not bare.may_read("db/primary")
    assert Agent.for_token_and_secret(hash_token("fdn_nobody"), None)[0] is None


def test_an_agent_loaded_by_token_saves_as_any_other():
    """The agent API's agent is a real model instance: what it did not load is loaded when
    read, and a save writes what it loaded, leaving the rest as it was."""
    agent = Agent.objects.create(name="a", token_hash=hash_token("fdn_t"), description="kept")
    Agent.objects.filter(pk=agent.pk).update(last_seen_at=timezone.now())
    loaded = Agent.for_token_and_secret(hash_token("fdn_t"), None)[0]
    assert loaded is not None
    assert loaded.is_active is True
    assert loaded.description == "kept"  # deferred, read on first use
    loaded.is_active = False
    loaded.save()
    agent.refresh_from_db()
    assert (agent.is_active, agent.description) == (False, "kept")
    assert agent.last_seen_at is not None


def test_the_admin_shows_a_new_token_once_and_never_stores_it(admin_client):
    response = admin_client.post(
        reverse("admin:agents_app_agent_add"),
        {
            "name": "web_agent",
            "description": "",
            "is_active": "on",
            "public_key": "",
            "grants-TOTAL_FORMS": "1",
            "grants-INITIAL_FORMS": "0",
            "grants-MIN_NUM_FORMS": "0",
            "grants-MAX_NUM_FORMS": "1000",
            "grants-0-pattern": "openai_*",
        },
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = response.context["token"]
    agent = Agent.objects.get(name="web_agent")
    assert agent.token_hash == hash_token(token)
    assert agent.grants.get().pattern == "openai_*"
    change_page = admin_client.get(reverse("admin:agents_app_agent_change", args=[agent.pk]))
    assert token.encode() not in change_page.content


def test_regenerating_a_token_invalidates_the_old_one(admin_client, make_agent):
    agent, old = make_agent()
    response = admin_client.post(
        reverse("admin:agents_app_agent_regenerate_token", args=[agent.pk])
    )
    new = response.context["token"]
    assert new != old
    assert authenticate(old) is None
    assert authenticate(new) == agent
    assert AuditLog.objects.filter(event_type="agents.token", action="regenerate").exists()


def test_staff_without_permission_cannot_regenerate(staff_client, make_agent):
    agent, token = make_agent()
    url = reverse("admin:agents_app_agent_regenerate_token", args=[agent.pk])
    assert staff_client.post(url).status_code == 403
    assert authenticate(token) == agent


@pytest.mark.parametrize(
    ("pattern", "valid"),
    [
        ("*", True),
        ("openai_api_key", True),
        ("db/*", True),
        ("db/primary-*", True),
        ("db*", True),
        ("db/..x*", True),  # a partial last segment: matches names like db/..x1
        ("", False),
        ("db/../*", False),
        ("../*", False),
        ("db//*", False),
        ("db/./x", False),
        ("db/*\n", False),
        ("db\n", False),
        ("*x", False),
        ("a b*", False),
    ],
)
def test_grant_patterns_are_checked_segment_by_segment(pattern, valid):
    from django.core.exceptions import ValidationError

    agent = Agent.objects.create(name="a", token_hash="x")
    grant = SecretGrant(agent=agent, pattern=pattern)
    if valid:
        grant.full_clean()
    else:
        with pytest.raises(ValidationError):
            grant.full_clean()


def _staff_client(*codenames: str):
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    user = User.objects.create_user("agent_staff", password="pw-agent-staff", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_changing_agents_does_not_let_a_staff_user_issue_credentials_or_grants():
    """Finding 1 of the review: change_agent alone let a staff user regenerate a token (or swap
    the public key, or add a '*' grant) and read every secret the agent may read."""
    from agents_app.services import create_agent

    agent, _ = create_agent("ai_manager", actor="setup", public_key="", grants=["prod/db"])
    client = _staff_client(
        "view_agent", "change_agent", "add_agent", "add_secretgrant", "change_secretgrant"
    )
    before = Agent.objects.get(pk=agent.pk).token_hash
    assert client.post(f"/admin/agents_app/agent/{agent.pk}/regenerate-token/").status_code == 403
    assert client.get("/admin/agents_app/agent/add/").status_code == 403
    public = "A" * 43 + "="
    response = client.post(
        f"/admin/agents_app/agent/{agent.pk}/change/",
        {
            "name": "ai_manager",
            "description": "",
            "is_active": "on",
            "public_key": public,
            "grants-TOTAL_FORMS": "2",
            "grants-INITIAL_FORMS": "1",
            "grants-0-id": str(agent.grants.get().pk),
            "grants-0-agent": str(agent.pk),
            "grants-0-pattern": "*",
            "grants-1-agent": str(agent.pk),
            "grants-1-pattern": "*",
        },
    )
    assert response.status_code in (200, 302)
    agent.refresh_from_db()
    assert agent.token_hash == before
    assert agent.public_key == ""
    assert list(agent.grants.values_list("pattern", flat=True)) == ["prod/db"]


def test_each_credential_act_is_audited_and_listed_on_the_agents_page(admin_client):
    from agents_app.services import create_agent
    from audit_app.models import AuditLog

    agent, _ = create_agent("ai_manager", actor="setup", grants=["prod/db"])
    admin_client.post(f"/admin/agents_app/agent/{agent.pk}/regenerate-token/")
    agent.public_key = "B" * 43 + "="
    agent.save()
    agent.grants.get().delete()
    SecretGrant.objects.create(agent=agent, pattern="*")
    rows = list(
        AuditLog.objects.filter(resource="agent:ai_manager")
        .order_by("id")
        .values_list("event_type", "action")
    )
    assert rows == [
        ("agents.grant", "add"),
        ("agents.create", "create"),
        ("agents.token", "regenerate"),
        ("agents.public_key", "change"),
        ("agents.grant", "remove"),
        ("agents.grant", "add"),
    ]
    page = admin_client.get(f"/admin/agents_app/agent/{agent.pk}/change/").content.decode()
    assert page.count("agents.grant") == 3
    assert "regenerate" in page
