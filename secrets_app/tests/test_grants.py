"""Grants: what an agent may read, given with ``create_agent`` or on the agent's admin page
(only with ``secrets_app.manage_grants``), audited however they change, and loaded with the
token's agent in one query."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from agents_app.models import Agent, hash_token
from audit_app.models import AuditLog
from foundation_client import generate_keypair
from secrets_app import grants
from secrets_app.grants import Reader, create_agent
from secrets_app.models import SecretGrant

pytestmark = pytest.mark.django_db


def _holder(token: str | None) -> Reader | None:
    return grants.look_up(hash_token(token), None)[0] if token else None


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
    holder = _holder(token)
    assert holder is not None
    assert holder.agent == agent
    assert sorted(holder.patterns) == ["db", "openai_*"]
    rows = AuditLog.objects.filter(resource="agent:ai_manager").order_by("id")
    assert [(r.event_type, r.action, (r.metadata or {}).get("pattern")) for r in rows] == [
        ("agents.create", "create", None),
        ("agents.grant", "add", "openai_*"),
        ("agents.grant", "add", "db"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad Name"], "name"),
        (["ok", "--public-key", "not-a-key"], "public_key"),
        (["ok", "--grant", "bad pattern*x"], "pattern"),
        (["ok", "--grant", "db", "--grant", "db"], "already exists"),
    ],
)
def test_create_agent_refuses_bad_input_and_creates_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_agent", *args, stdout=StringIO())
    assert not Agent.objects.exists()
    assert not SecretGrant.objects.exists()
    assert not AuditLog.objects.filter(event_type__startswith="agents.").exists()


def test_a_public_key_is_accepted():
    _, public = generate_keypair()
    # "=" form: a URL-safe base64 key may start with "-", which argparse would read as an option.
    call_command("create_agent", "sealed_agent", f"--public-key={public}", stdout=StringIO())
    assert Agent.objects.get().public_key == public


def test_grants_match_exact_names_and_prefixes():
    agent = Agent.objects.create(name="a", token_hash="x")
    SecretGrant.objects.create(agent=agent, pattern="openai_api_key")
    SecretGrant.objects.create(agent=agent, pattern="db/*")
    reader = Reader(agent, tuple(agent.grants.values_list("pattern", flat=True)))
    assert reader.may_read("openai_api_key")
    assert not reader.may_read("openai_api_key_2")
    assert reader.may_read("db/primary")
    assert not reader.may_read("dbx")
    assert not Reader(agent, ()).may_read("openai_api_key")


def test_unknown_and_empty_tokens_find_no_one():
    agent = Agent.objects.create(name="a", token_hash=hash_token("fdn_t"))
    assert _holder(None) is None
    assert _holder("") is None
    assert _holder("fdn_other") is None
    agent.is_active = False
    agent.save()
    holder = _holder("fdn_t")  # found, so that its refusals are audited by name
    assert holder is not None
    assert holder.agent == agent
    assert holder.agent.is_active is False


def test_a_token_loads_its_agent_and_grants_in_one_query(django_assert_num_queries):
    agent = Agent.objects.create(name="a", token_hash=hash_token("fdn_t"), public_key="")
    SecretGrant.objects.create(agent=agent, pattern="db/*")
    SecretGrant.objects.create(agent=agent, pattern="openai_api_key")
    Agent.objects.create(name="bare", token_hash=hash_token("fdn_bare"))
    with django_assert_num_queries(1):
        loaded = _holder("fdn_t")
        assert loaded is not None
        assert sorted(loaded.patterns) == ["db/*", "openai_api_key"]
        assert loaded.may_read("db/primary")
        assert not loaded.may_read("dbx")
    assert (loaded.agent.pk, loaded.agent.name) == (agent.pk, "a")
    bare = _holder("fdn_bare")
    assert bare is not None
    assert bare.patterns == ()
    assert not bare.may_read("db/primary")


def test_an_agent_loaded_by_token_saves_as_any_other():
    """The agent API's agent is a real model instance: what it did not load is loaded when
    read, and a save writes what it loaded, leaving the rest as it was."""
    agent = Agent.objects.create(name="a", token_hash=hash_token("fdn_t"), description="kept")
    Agent.objects.filter(pk=agent.pk).update(last_seen_at=timezone.now())
    holder = _holder("fdn_t")
    assert holder is not None
    loaded = holder.agent
    assert loaded.is_active is True
    assert loaded.description == "kept"  # deferred, read on first use
    loaded.is_active = False
    loaded.save()
    agent.refresh_from_db()
    assert (agent.is_active, agent.description) == (False, "kept")
    assert agent.last_seen_at is not None


def test_a_change_made_during_a_look_up_keeps_it_out_of_the_cache(settings):
    settings.AGENT_AUTH_CACHE_SECONDS = 60
    agent = Agent.objects.create(name="a", token_hash=hash_token("fdn_t"))
    since = grants.generation()
    holder = _holder("fdn_t")
    agent.is_active = False
    agent.save()  # its signal forgets, and bumps the generation
    grants.remember(hash_token("fdn_t"), holder, since)
    assert grants.cached(hash_token("fdn_t")) == (False, None)
    grants.remember(hash_token("fdn_t"), holder, grants.generation())
    assert grants.cached(hash_token("fdn_t")) == (True, holder)


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


def test_the_admin_shows_a_new_token_once_with_the_grants_given(admin_client):
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
    listing = admin_client.get(reverse("admin:agents_app_agent_changelist") + "?q=openai_*")
    assert b"web_agent" in listing.content
    assert b"openai_*" in listing.content  # the grants column


def _staff_client(*codenames: str):
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    user = User.objects.create_user("agent_staff", password="pw-agent-staff", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def _change_grants(client, agent, pattern: str):
    return client.post(
        f"/admin/agents_app/agent/{agent.pk}/change/",
        {
            "name": agent.name,
            "description": "",
            "is_active": "on",
            "public_key": agent.public_key,
            "grants-TOTAL_FORMS": "2",
            "grants-INITIAL_FORMS": "1",
            "grants-0-id": str(agent.grants.get().pk),
            "grants-0-agent": str(agent.pk),
            "grants-0-pattern": pattern,
            "grants-1-agent": str(agent.pk),
            "grants-1-pattern": "",
        },
    )


def test_changing_agents_does_not_let_a_staff_user_issue_credentials_or_grants():
    """Finding 1 of the review: change_agent alone let a staff user regenerate a token (or swap
    the public key, or add a '*' grant) and read every secret the agent may read."""
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


def test_manage_grants_lets_a_staff_user_change_grants_and_the_change_is_audited():
    agent, _ = create_agent("ai_manager", actor="setup", grants=["prod/db"])
    client = _staff_client("view_agent", "change_agent", "manage_grants")
    response = _change_grants(client, agent, "prod/*")
    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(agent.grants.values_list("pattern", flat=True)) == ["prod/*"]
    row = AuditLog.objects.filter(event_type="agents.grant").latest("id")
    assert (row.actor, row.action, row.metadata["pattern"]) == ("agent_staff", "change", "prod/*")


def test_each_credential_act_is_audited_and_listed_on_the_agents_page(admin_client):
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
        ("agents.create", "create"),
        ("agents.grant", "add"),
        ("agents.token", "regenerate"),
        ("agents.public_key", "change"),
        ("agents.grant", "remove"),
        ("agents.grant", "add"),
    ]
    page = admin_client.get(f"/admin/agents_app/agent/{agent.pk}/change/").content.decode()
    assert page.count("agents.grant") == 3
    assert "regenerate" in page
