"""Finding 1 of the review, in real Chromium: a staff user who may change agents, but was not
given the permission to issue credentials, cannot regenerate an agent's token (it would let them
read every secret the agent may read). One who was given it can, and the page lists who did."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission, User

from agents_app.models import Agent
from audit_app.models import AuditLog
from secrets_app.grants import create_agent

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "e2e-agent-staff-pass"


def staff(page, *codenames: str) -> None:
    user = User.objects.create_user("agent_staff", password=PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "agent_staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/$"))


def test_without_the_permission_there_is_no_button_and_the_post_is_403(page):
    agent, _ = create_agent("ai_manager", actor="setup", grants=["prod/*"])
    before = Agent.objects.get(pk=agent.pk).token_hash
    staff(page, "view_agent", "change_agent")
    page.goto(f"/admin/agents_app/agent/{agent.pk}/change/")
    page.wait_for_selector("#credential-history")
    assert page.locator("button.regenerate-token").count() == 0
    # The button's POST, made by hand from the page (with its CSRF token): refused.
    status = page.evaluate(
        """async (url) => {
            const token = document.querySelector('[name=csrfmiddlewaretoken]').value;
            const r = await fetch(url, {method: 'POST', headers: {'X-CSRFToken': token}});
            return r.status;
        }""",
        f"/admin/agents_app/agent/{agent.pk}/regenerate-token/",
    )
    assert status == 403
    assert Agent.objects.get(pk=agent.pk).token_hash == before
    refused = AuditLog.objects.get(event_type="agents.token", success=False)
    assert (refused.actor, refused.resource) == ("agent_staff", "agent:ai_manager")
    # The refusal shows on the agent's page.
    page.reload()
    assert "not permitted to issue credentials" in page.inner_text("#credential-history")


def test_with_the_permission_the_button_issues_new_credentials_once(page):
    agent, _ = create_agent("ai_manager", actor="setup")
    before = Agent.objects.get(pk=agent.pk).token_hash
    staff(page, "view_agent", "change_agent", "issue_credentials")
    page.goto(f"/admin/agents_app/agent/{agent.pk}/change/")
    page.click("button.regenerate-token")
    page.wait_for_selector("text=FOUNDATION_AGENT_TOKEN=")
    assert Agent.objects.get(pk=agent.pk).token_hash != before
    page.goto(f"/admin/agents_app/agent/{agent.pk}/change/")
    history = page.inner_text("#credential-history")
    assert "agent_staff" in history
    assert "regenerate" in history
