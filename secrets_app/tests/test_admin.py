"""The secrets admin: every action through the services, access checked, values never shown."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from audit_app.models import AuditLog
from secrets_app import services
from secrets_app.models import LocalSecretValue, SecretMetadata, SecretVersion

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:secrets_app_secretmetadata_changelist")
ADD = reverse("admin:secrets_app_secretmetadata_add")


def url(action: str, *args: object) -> str:
    """A page of the secrets admin: Django's own (``change``) or one of its own."""
    return reverse(f"admin:secrets_app_secretmetadata_{action}", args=args)


@pytest.fixture
def secret(admin_user):
    return services.create_secret(
        "db_password", "first-value", actor=admin_user, backend="local", provider="internal"
    )


def test_creating_a_secret_stores_the_value_and_never_echoes_it(admin_client, vault_prefix):
    response = admin_client.post(
        ADD,
        {
            "secret_name": "openai_api_key",
            "value": "sk-created-in-admin",
            "storage_backend": "vault",
            "provider": "openai",
            "rotation_policy_days": "30",
            "description": "prod key",
        },
    )
    secret = SecretMetadata.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("change", secret.pk)
    assert services.read_value(secret) == "sk-created-in-admin"
    page = admin_client.get(response["Location"])
    assert b"sk-created-in-admin" not in page.content
    assert b"Set new value" in page.content
    assert AuditLog.objects.get(event_type="secrets.write").actor == "admin"


def test_an_invalid_create_form_redisplays_without_the_value(admin_client):
    response = admin_client.post(
        ADD, {"secret_name": "bad name", "value": "typed-value-canary", "storage_backend": "local"}
    )
    assert response.status_code == 200
    assert b"typed-value-canary" not in response.content
    assert b"starting with a letter or digit" in response.content
    assert not SecretMetadata.objects.exists()


def test_a_backend_failure_on_create_is_shown_and_stores_nothing(admin_client, settings):
    settings.FOUNDATION_MASTER_KEY = None
    response = admin_client.post(
        ADD, {"secret_name": "k", "value": "v-canary", "storage_backend": "local"}
    )
    assert response.status_code == 200
    assert b"FOUNDATION_MASTER_KEY" in response.content
    assert b"v-canary" not in response.content
    assert not SecretMetadata.objects.exists()


def test_setting_a_new_value_makes_a_new_version(admin_client, secret):
    page = admin_client.get(url("set_value", secret.pk))
    assert page.status_code == 200
    assert b'type="password"' in page.content
    response = admin_client.post(url("set_value", secret.pk), {"value": "second"})
    assert response.status_code == 302
    secret.refresh_from_db()
    assert services.read_value(secret) == "second"


def test_the_versions_page_lists_versions_without_values(admin_client, secret, admin_user):
    services.set_value(secret, "second-value", actor=admin_user)
    page = admin_client.get(url("versions", secret.pk))
    html = page.content.decode()
    assert page.status_code == 200
    assert "first-value" not in html
    assert "second-value" not in html
    assert "Roll back to version 1" in html
    assert "Roll back to version 2" not in html  # the current one


def test_rollback_from_the_admin(admin_client, secret, admin_user):
    services.set_value(secret, "bad-value", actor=admin_user)
    response = admin_client.post(url("rollback", secret.pk, 1))
    assert response.status_code == 302
    secret.refresh_from_db()
    assert services.read_value(secret) == "first-value"
    assert SecretVersion.objects.get(secret=secret, version=3).rolled_back_from == 1


def test_rollback_to_an_unknown_version_says_so(admin_client, secret):
    response = admin_client.post(url("rollback", secret.pk, 42), follow=True)
    assert b"Rollback failed" in response.content
    secret.refresh_from_db()
    assert secret.current_version == 1


def test_rotate_now_from_the_admin(admin_client, secret):
    response = admin_client.post(url("rotate", secret.pk), follow=True)
    assert b"Rotated: version 2 is current." in response.content
    secret.refresh_from_db()
    assert services.read_value(secret) != "first-value"


def test_rotate_and_rollback_need_post(admin_client, secret):
    assert admin_client.get(url("rotate", secret.pk)).status_code == 405
    assert admin_client.get(url("rollback", secret.pk, 1)).status_code == 405


def test_deleting_from_the_admin_removes_the_backend_value(admin_client, secret):
    confirm = admin_client.get(url("delete", secret.pk))
    assert confirm.status_code == 200
    response = admin_client.post(url("delete", secret.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not SecretMetadata.objects.exists()
    # The backend's value went too (the fixture's secret is in the local backend).
    assert not LocalSecretValue.objects.filter(secret_id=secret.pk).exists()
    assert AuditLog.objects.get(event_type="secrets.delete").success is True


def test_the_list_shows_due_rotations_and_last_reads(admin_client, secret):
    SecretMetadata.objects.filter(pk=secret.pk).update(
        last_rotated=timezone.now() - timedelta(days=100),
        last_read_by="ai_manager",
        last_read_at=timezone.now(),
    )
    html = admin_client.get(CHANGELIST).content.decode()
    assert "due since" in html
    assert "ai_manager" in html
    due_only = admin_client.get(CHANGELIST, {"rotation": "due"}).content.decode()
    assert "db_password" in due_only
    SecretMetadata.objects.filter(pk=secret.pk).update(last_rotated=timezone.now())
    assert "db_password" not in admin_client.get(CHANGELIST, {"rotation": "due"}).content.decode()


def test_metadata_can_be_edited_but_not_the_name_or_backend(admin_client, secret):
    response = admin_client.post(
        url("change", secret.pk),
        {
            "provider": "postgres",
            "description": "primary",
            "rotation_policy_days": "7",
            "secret_name": "renamed",
            "storage_backend": "vault",
        },
    )
    assert response.status_code == 302
    secret.refresh_from_db()
    assert (secret.secret_name, secret.storage_backend) == ("db_password", "local")
    assert (secret.provider, secret.rotation_policy_days) == ("postgres", 7)


@pytest.mark.parametrize(
    ("action", "args", "method"),
    [
        ("set_value", True, "get"),
        ("versions", True, "get"),
        ("rotate", True, "post"),
        ("add", False, "get"),
    ],
)
def test_staff_without_permission_are_refused(staff_client, secret, action, args, method):
    target = url(action, secret.pk) if args else url(action)
    assert getattr(staff_client, method)(target).status_code == 403


def test_view_permission_allows_versions_but_not_changes(staff_client, staff_user, secret):
    staff_user.user_permissions.add(Permission.objects.get(codename="view_secretmetadata"))
    assert staff_client.get(url("versions", secret.pk)).status_code == 200
    assert staff_client.post(url("rotate", secret.pk)).status_code == 403
    assert staff_client.post(url("rollback", secret.pk, 1)).status_code == 403
    assert staff_client.post(url("delete", secret.pk), {"post": "yes"}).status_code == 403
    assert SecretMetadata.objects.filter(pk=secret.pk).exists()


def test_outsiders_are_sent_to_log_in(outsider_client, secret):
    response = outsider_client.get(url("versions", secret.pk))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_value_is_marked_sensitive_for_error_reports(admin_client):
    from django.views.debug import SafeExceptionReporterFilter

    response = admin_client.post(ADD, {"secret_name": "bad name", "value": "never-in-reports"})
    assert list(response.wsgi_request.sensitive_post_parameters) == ["value"]
    cleaned = SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request)
    assert cleaned["value"] != "never-in-reports"


def test_a_due_secret_no_rotator_can_rotate_says_to_set_a_new_value(admin_client, secret):
    SecretMetadata.objects.filter(pk=secret.pk).update(
        provider="openai", last_rotated=timezone.now() - timedelta(days=100)
    )
    html = admin_client.get(CHANGELIST).content.decode()
    assert "set a new value" in html
    response = admin_client.post(url("rotate", secret.pk), follow=True)
    assert b"no rotator is registered for provider" in response.content
    assert services.read_value(secret) == "first-value"


def test_deleting_a_vault_secret_from_the_admin_destroys_its_vault_entry(
    admin_client, admin_user, vault_prefix, settings
):
    import hvac.exceptions

    from secrets_app.backends import vault

    secret = services.create_secret("vault_doomed", "v", actor=admin_user, backend="vault")
    path = vault.path_for(secret)
    read = vault.client().secrets.kv.v2.read_secret_version
    assert read(path=path, mount_point=settings.SECRETS_VAULT_MOUNT, raise_on_deleted_version=True)
    response = admin_client.post(url("delete", secret.pk), {"post": "yes"})
    assert response.status_code == 302
    with pytest.raises(hvac.exceptions.InvalidPath):
        read(path=path, mount_point=settings.SECRETS_VAULT_MOUNT, raise_on_deleted_version=True)
