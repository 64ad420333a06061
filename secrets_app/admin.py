"""Secret metadata in the admin. Values, versions and rotation arrive with the secrets issue."""

from __future__ import annotations

from django.contrib import admin

from audit_app.admin_mixins import AuditedModelAdmin
from secrets_app.models import SecretMetadata


@admin.register(SecretMetadata)
class SecretMetadataAdmin(AuditedModelAdmin):
    list_display = (
        "secret_name",
        "provider",
        "storage_backend",
        "last_rotated",
        "rotation_policy_days",
        "updated_at",
    )
    list_filter = ("provider", "storage_backend")
    search_fields = ("secret_name", "provider")
    readonly_fields = ("last_rotated", "created_at", "updated_at")
