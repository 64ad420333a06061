"""Secrets through both real backends: store, read, versions, rollback, rotation, deletion."""

from __future__ import annotations

import pytest

from audit_app.models import AuditLog
from secrets_app import services
from secrets_app.exceptions import InvalidSecret, RotationFailed, SecretDoesNotExist
from secrets_app.models import LocalSecretValue, SecretMetadata, SecretVersion

pytestmark = pytest.mark.django_db

BACKENDS = ["vault", "local"]


@pytest.fixture(params=BACKENDS)
def backend(request, vault_prefix) -> str:
    return request.param


def audit_rows(event_type: str) -> list[tuple[str | None, bool | None]]:
    rows = AuditLog.objects.filter(event_type=event_type).order_by("id")
    return list(rows.values_list("action", "success"))


def test_a_secret_is_stored_and_read_back(backend, admin_user):
    secret = services.create_secret("openai_api_key", "sk-one", actor=admin_user, backend=backend)
    assert secret.current_version == 1
    assert secret.storage_backend == backend
    assert services.read_value(secret) == "sk-one"
    assert audit_rows("secrets.write") == [("create", True)]


def test_each_new_value_is_a_new_version_and_old_ones_stay_readable(backend, admin_user):
    secret = services.create_secret("db_password", "first", actor=admin_user, backend=backend)
    assert services.set_value(secret, "second", actor=admin_user) == 2
    assert services.set_value(secret, "third", actor=admin_user) == 3
    assert [services.read_value(secret, v) for v in (1, 2, 3)] == ["first", "second", "third"]
    assert services.read_value(secret) == "third"
    versions = SecretVersion.objects.filter(secret=secret).order_by("version")
    assert [(v.version, v.reason, v.created_by) for v in versions] == [
        (1, "created", "admin"),
        (2, "set", "admin"),
        (3, "set", "admin"),
    ]


def test_rollback_makes_an_old_value_current_as_a_new_version(backend, admin_user):
    secret = services.create_secret("db_password", "good", actor=admin_user, backend=backend)
    services.set_value(secret, "broken", actor=admin_user)
    assert services.rollback(secret, 1, actor=admin_user) == 3
    assert services.read_value(secret) == "good"
    latest = SecretVersion.objects.get(secret=secret, version=3)
    assert (latest.reason, latest.rolled_back_from) == ("rollback", 1)
    assert audit_rows("secrets.rollback") == [("rollback", True)]


def test_rollback_to_a_missing_version_fails_and_changes_nothing(backend, admin_user):
    secret = services.create_secret("db_password", "good", actor=admin_user, backend=backend)
    with pytest.raises(SecretDoesNotExist, match="version 7"):
        services.rollback(secret, 7, actor=admin_user)
    secret.refresh_from_db()
    assert secret.current_version == 1
    assert audit_rows("secrets.rollback") == [("rollback", False)]


def test_rotation_makes_a_random_new_value(backend, admin_user):
    secret = services.create_secret(
        "shared_key", "initial", actor=admin_user, backend=backend, provider="internal"
    )
    assert services.rotate(secret, actor="scheduler") == 2
    value = services.read_value(secret)
    assert value != "initial"
    assert len(value) >= 43  # 32 random bytes, URL-safe base64
    assert SecretVersion.objects.get(secret=secret, version=2).reason == "rotated"


def test_deleting_removes_every_version(backend, admin_user):
    secret = services.create_secret("temp", "x", actor=admin_user, backend=backend)
    services.set_value(secret, "y", actor=admin_user)
    services.delete_secret(secret, actor=admin_user)
    assert not SecretMetadata.objects.exists()
    assert not LocalSecretValue.objects.exists()
    assert audit_rows("secrets.delete") == [("delete", True)]
    # The name is free again, and starts from version 1 in the backend too.
    again = services.create_secret("temp", "z", actor=admin_user, backend=backend)
    assert again.current_version == 1
    assert services.read_value(again) == "z"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "has space",
        "-leading-dash",
        "x" * 101,
        "semi;colon",
        "x/../prod/db",
        "prod/..",
        "a//b",
        "a/./b",
        "trailing/",
        "prod/db\n",
        "nul\x00",
    ],
)
def test_an_invalid_name_is_refused_and_nothing_is_stored(name, admin_user):
    with pytest.raises(InvalidSecret, match="invalid secret name"):
        services.create_secret(name, "v", actor=admin_user, backend="local")
    assert not SecretMetadata.objects.exists()
    # Audited as an invalid name, never with its text.
    assert list(
        AuditLog.objects.filter(event_type="secrets.write").values_list("resource", "success")
    ) == [("secret:(invalid name)", False)]


@pytest.mark.parametrize("name", ["a", "prod/db", "a.b/c..d/e:f-g_h", "v1.2/..x/x.."])
def test_names_whose_segments_are_whole_are_valid(name):
    from secrets_app.models import secret_name_segments

    assert secret_name_segments(name) == name.split("/")


def test_a_dot_dot_name_cannot_reach_another_secrets_vault_entry(admin_user, vault_prefix):
    """The review's attack: hvac and requests normalise ``x/../prod/db`` to ``prod/db``, so
    writing it replaced, and deleting it destroyed, another secret's Vault entry."""
    from secrets_app.backends.vault import path_for

    prod = services.create_secret("prod/db", "the real one", actor=admin_user, backend="vault")
    with pytest.raises(InvalidSecret):
        services.create_secret("x/../prod/db", "forged", actor=admin_user, backend="vault")
    # A row from before names were checked segment by segment never reaches Vault.
    old = SecretMetadata(secret_name="x/../prod/db", storage_backend="vault")
    with pytest.raises(InvalidSecret):
        path_for(old)
    assert services.read_value(prod) == "the real one"


def test_an_empty_value_is_refused(admin_user):
    with pytest.raises(InvalidSecret, match="non-empty"):
        services.create_secret("x", "", actor=admin_user, backend="local")
    secret = services.create_secret("x", "v", actor=admin_user, backend="local")
    with pytest.raises(InvalidSecret, match="non-empty"):
        services.set_value(secret, "", actor=admin_user)
    secret.refresh_from_db()  # what the database holds, not what the object was given
    assert secret.current_version == 1
    assert services.read_value(secret) == "v"
    assert audit_rows("secrets.write") == [("create", False), ("create", True), ("set", False)]


def test_a_duplicate_name_is_refused(admin_user):
    services.create_secret("x", "v", actor=admin_user, backend="local")
    with pytest.raises(InvalidSecret, match="exists already"):
        services.create_secret("x", "w", actor=admin_user, backend="local")
    assert SecretMetadata.objects.count() == 1


def test_an_unknown_backend_is_refused(admin_user):
    with pytest.raises(InvalidSecret, match="unknown storage backend"):
        services.create_secret("x", "v", actor=admin_user, backend="aws_secrets")
    assert not SecretMetadata.objects.exists()


def test_a_failed_rotation_keeps_the_current_version_and_is_audited(admin_user, flaky_rotator):
    secret = services.create_secret(
        "flaky_key", "still-good", actor=admin_user, backend="local", provider="flaky"
    )
    with pytest.raises(RotationFailed, match="ConnectionError"):
        services.rotate(secret, actor="scheduler")
    secret.refresh_from_db()
    assert secret.current_version == 1
    assert services.read_value(secret) == "still-good"
    row = AuditLog.objects.get(event_type="secrets.rotate")
    assert (row.success, row.actor) == (False, "scheduler")
    assert "ConnectionError" in (row.error_message or "")


def next_message(pubsub, timeout: float = 2.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message is not None:
            return message
    raise AssertionError("no message published")


@pytest.fixture
def rotation_notices(redis_conn):
    """Subscribed to the rotation channel (on-commit announcements run only when a test
    executes them, so nothing earlier arrives)."""
    from foundation_client.protocol import SECRETS_ROTATION_CHANNEL

    pubsub = redis_conn.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(SECRETS_ROTATION_CHANNEL)
    yield pubsub
    pubsub.close()


def test_a_new_version_is_announced_with_name_and_version_only(
    admin_user, rotation_notices, django_capture_on_commit_callbacks
):
    from foundation_client import RotationNotice

    secret = services.create_secret("announced", "v1-value", actor=admin_user, backend="local")
    with django_capture_on_commit_callbacks(execute=True):
        services.set_value(secret, "v2-value", actor=admin_user)
    message = next_message(rotation_notices)
    assert RotationNotice.decode(message["data"]) == RotationNotice("announced", 2)
    assert b"v2-value" not in message["data"]


def test_vault_keeps_the_configured_number_of_versions(vault_prefix, admin_user, settings):
    import hvac

    services.create_secret("kept", "v", actor=admin_user, backend="vault")
    client = hvac.Client(url=settings.VAULT_ADDR, token=settings.VAULT_TOKEN)
    meta = client.secrets.kv.v2.read_secret_metadata(
        path=f"{vault_prefix}/kept", mount_point=settings.SECRETS_VAULT_MOUNT
    )
    assert meta["data"]["max_versions"] == settings.SECRETS_VAULT_MAX_VERSIONS


def test_a_deletion_is_announced_as_version_zero(
    admin_user, rotation_notices, django_capture_on_commit_callbacks
):
    from foundation_client import RotationNotice

    secret = services.create_secret("doomed", "v", actor=admin_user, backend="local")
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_secret(secret, actor=admin_user)
    notice = RotationNotice.decode(next_message(rotation_notices)["data"])
    assert notice == RotationNotice("doomed", 0)


def test_an_unexpected_rotation_crash_does_not_stop_the_others(settings, admin_user, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    first = services.create_secret(
        "first", "v", actor=admin_user, backend="local", provider="internal", rotation_policy_days=1
    )
    second = services.create_secret(
        "second",
        "v",
        actor=admin_user,
        backend="local",
        provider="internal",
        rotation_policy_days=1,
    )
    SecretMetadata.objects.update(last_rotated=timezone.now() - timedelta(days=2))
    real_rotate = services.rotate

    def rotate(secret, **kwargs):
        if secret.secret_name == "first":
            raise RuntimeError("boom")
        return real_rotate(secret, **kwargs)

    monkeypatch.setattr(services, "rotate", rotate)
    report = services.rotate_due()
    assert (report.rotated, report.failed) == (["second"], ["first"])
    row = AuditLog.objects.get(event_type="secrets.rotate", success=False)
    assert row.error_message == "internal error (RuntimeError)"
    del first, second


def test_a_provider_without_a_rotator_is_never_rotated_only_reminded(admin_user):
    """Finding 7 of the review: an OpenAI key past its 90 days was replaced by random text, and
    the real key, which lives at OpenAI, was lost to the agents."""
    from datetime import timedelta

    from django.db.models import F
    from django.utils import timezone

    key = services.create_secret(
        "openai_api_key", "sk-real", actor=admin_user, backend="local", provider="openai"
    )
    SecretMetadata.objects.update(last_rotated=timezone.now() - timedelta(days=91))
    key.refresh_from_db()
    with pytest.raises(RotationFailed, match="no rotator is registered for provider 'openai'"):
        services.rotate(key, actor=admin_user)
    report = services.rotate_due()
    assert (report.rotated, report.failed, report.reminded) == ([], [], ["openai_api_key"])
    assert services.read_value(key) == "sk-real"
    assert services.rotate_due().reminded == []  # once per due period, not once per run
    reminders = AuditLog.objects.filter(event_type="secrets.rotation_due")
    assert [(r.resource, r.action, r.metadata["provider"]) for r in reminders] == [
        ("secret:openai_api_key", "remind", "openai")
    ]
    # A new value starts the period again; when it is due once more, one more reminder.
    services.set_value(key, "sk-new", actor=admin_user)
    assert services.rotate_due().reminded == []
    ninety_one_days_pass = timedelta(days=91)
    SecretMetadata.objects.update(
        last_rotated=F("last_rotated") - ninety_one_days_pass,
        rotation_reminded_at=F("rotation_reminded_at") - ninety_one_days_pass,
    )
    assert services.rotate_due().reminded == ["openai_api_key"]
    assert services.read_value(key) == "sk-new"


def test_a_secret_without_a_provider_is_not_rotated_either(admin_user):
    from datetime import timedelta

    from django.utils import timezone

    services.create_secret("legacy", "kept", actor=admin_user, backend="local")
    SecretMetadata.objects.update(last_rotated=timezone.now() - timedelta(days=91))
    assert services.rotate_due().reminded == ["legacy"]
    assert services.read_value(SecretMetadata.objects.get()) == "kept"


def test_the_value_cache_keeps_no_version_older_than_the_newest(settings):
    from secrets_app import value_cache

    settings.SECRETS_SITE_CACHE_SECONDS = 60
    value_cache.forget()
    value_cache.put(7, 1, "one")
    value_cache.put(7, 2, "two")  # newer: the older goes
    assert (value_cache.get(7, 1), value_cache.get(7, 2)) == (None, "two")
    value_cache.put(7, 1, "one")  # a rollback's read of an old version is not kept
    assert value_cache.get(7, 1) is None
    value_cache.forget_older(7, 3)
    assert value_cache.get(7, 2) is None
    value_cache.put(8, 1, "x")
    value_cache.forget_older(8, 0)  # deleted
    assert value_cache.get(8, 1) is None
