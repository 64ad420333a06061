"""An admin add, change and delete each leave an audit row naming the admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit_app.models import AuditLog
from secrets_app.models import SecretMetadata

pytestmark = pytest.mark.django_db


def admin_changes() -> list[tuple[str | None, str | None, str | None]]:
    rows = AuditLog.objects.filter(event_type="admin.change").order_by("id")
    return list(rows.values_list("action", "actor", "resource"))


def test_add_change_and_delete_are_audited(admin_client, admin_user):
    admin_client.post(
        reverse("admin:secrets_app_secretmetadata_add"),
        {
            "secret_name": "openai_api_key",
            "provider": "openai",
            "storage_backend": "vault",
            "rotation_policy_days": "30",
        },
        REMOTE_ADDR="192.0.2.10",
    )
    secret = SecretMetadata.objects.get()
    admin_client.post(
        reverse("admin:secrets_app_secretmetadata_change", args=[secret.pk]),
        {
            "secret_name": "openai_api_key",
            "provider": "openai",
            "storage_backend": "vault",
            "rotation_policy_days": "60",
        },
    )
    admin_client.post(
        reverse("admin:secrets_app_secretmetadata_delete", args=[secret.pk]), {"post": "yes"}
    )
    resource = f"secrets_app.secretmetadata:{secret.pk}"
    assert admin_changes() == [
        ("add", "admin", resource),
        ("change", "admin", resource),
        ("delete", "admin", resource),
    ]
    added = AuditLog.objects.get(action="add", event_type="admin.change")
    assert added.ip_address == "192.0.2.10"
    changed = AuditLog.objects.get(action="change", event_type="admin.change")
    assert "Rotation policy days" in str(changed.metadata["change_message"])


def test_a_bulk_delete_audits_each_row(admin_client):
    a = SecretMetadata.objects.create(secret_name="a")
    b = SecretMetadata.objects.create(secret_name="b")
    admin_client.post(
        reverse("admin:secrets_app_secretmetadata_changelist"),
        {"action": "delete_selected", "_selected_action": [a.pk, b.pk], "post": "yes"},
    )
    assert not SecretMetadata.objects.exists()
    assert sorted(r for _, _, r in admin_changes()) == [
        f"secrets_app.secretmetadata:{a.pk}",
        f"secrets_app.secretmetadata:{b.pk}",
    ]
