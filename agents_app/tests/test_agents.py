"""Agent identities: tokens and Redis passwords kept as hashes, credentials issued only with
their own permission, every credential act audited."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents_app.models import Agent, hash_token
from agents_app.services import create_agent, issue_credentials
from audit_app.models import AuditLog

pytestmark = pytest.mark.django_db


def _holder(token: str) -> Agent | None:
    return Agent.objects.filter(token_hash=hash_token(token)).first()


def test_an_agent_is_created_with_its_credentials_kept_as_hashes_and_audited():
    agent, credentials = create_agent("ai_manager", actor="setup")
    assert credentials.token.startswith("fdn_")
    assert agent.token_hash == hash_token(credentials.token) != credentials.token
    assert agent.redis_password_hash == hash_token(credentials.redis_password)
    row = AuditLog.objects.get(event_type="agents.create")
    assert (row.actor, row.resource, row.action) == ("setup", "agent:ai_manager", "create")


def test_a_bad_name_or_key_creates_nothing():
    from django.core.exceptions import ValidationError

    for name, key in (("Bad Name", ""), ("ok", "not-a-key")):
        with pytest.raises(ValidationError):
            create_agent(name, actor="setup", public_key=key)
    assert not Agent.objects.exists()
    assert not AuditLog.objects.filter(event_type="agents.create").exists()


def test_an_agent_that_cannot_be_audited_is_not_created(monkeypatch):
    from audit_app import services as audit

    def fail(*args, **kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(audit, "write", fail)
    with pytest.raises(RuntimeError):
        create_agent("ai_manager", actor="setup")
    assert not Agent.objects.exists()


def test_new_credentials_replace_the_old_at_once():
    agent, old = create_agent("ai_manager", actor="setup")
    new = issue_credentials(agent, actor="setup")
    assert _holder(old.token) is None
    assert _holder(new.token) == agent
    assert agent.redis_password_hash == hash_token(new.redis_password)


def test_regenerating_a_token_invalidates_the_old_one(admin_client, make_agent):
    agent, old = make_agent()
    response = admin_client.post(
        reverse("admin:agents_app_agent_regenerate_token", args=[agent.pk])
    )
    new = response.context["token"]
    assert new != old
    assert _holder(old) is None
    assert _holder(new) == agent
    assert "no-store" in response["Cache-Control"]
    assert AuditLog.objects.filter(event_type="agents.token", action="regenerate").exists()


def test_staff_without_permission_cannot_regenerate(staff_client, make_agent):
    agent, token = make_agent()
    url = reverse("admin:agents_app_agent_regenerate_token", args=[agent.pk])
    assert staff_client.post(url).status_code == 403
    assert _holder(token) == agent
    row = AuditLog.objects.get(event_type="agents.token")
    assert (row.success, row.error_message) == (False, "not permitted to issue credentials")
