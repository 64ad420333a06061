"""An admin add, change and delete each leave an audit row naming the admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents_app.models import Agent
from audit_app.models import AuditLog

pytestmark = pytest.mark.django_db

FORMSET = {
    "grants-TOTAL_FORMS": "0",
    "grants-INITIAL_FORMS": "0",
    "grants-MIN_NUM_FORMS": "0",
    "grants-MAX_NUM_FORMS": "1000",
}


def admin_changes() -> list[tuple[str | None, str | None, str | None]]:
    rows = AuditLog.objects.filter(event_type="admin.change").order_by("id")
    return list(rows.values_list("action", "actor", "resource"))


def test_add_change_and_delete_are_audited(admin_client, admin_user):
    admin_client.post(
        reverse("admin:agents_app_agent_add"),
        {"name": "ai_manager", "description": "", "is_active": "on", **FORMSET},
        REMOTE_ADDR="192.0.2.10",
    )
    agent = Agent.objects.get()
    admin_client.post(
        reverse("admin:agents_app_agent_change", args=[agent.pk]),
        {"name": "ai_manager", "description": "the pilot", "is_active": "on", **FORMSET},
    )
    admin_client.post(reverse("admin:agents_app_agent_delete", args=[agent.pk]), {"post": "yes"})
    resource = f"agents_app.agent:{agent.pk}"
    assert admin_changes() == [
        ("add", "admin", resource),
        ("change", "admin", resource),
        ("delete", "admin", resource),
    ]
    added = AuditLog.objects.get(action="add", event_type="admin.change")
    assert added.ip_address == "192.0.2.10"
    changed = AuditLog.objects.get(action="change", event_type="admin.change")
    assert "Description" in str(changed.metadata["change_message"])


def test_a_bulk_delete_audits_each_row(admin_client):
    a = Agent.objects.create(name="a", token_hash="1")
    b = Agent.objects.create(name="b", token_hash="2")
    admin_client.post(
        reverse("admin:agents_app_agent_changelist"),
        {"action": "delete_selected", "_selected_action": [a.pk, b.pk], "post": "yes"},
    )
    assert not Agent.objects.exists()
    assert sorted(r for _, _, r in admin_changes()) == [
        f"agents_app.agent:{a.pk}",
        f"agents_app.agent:{b.pk}",
    ]
