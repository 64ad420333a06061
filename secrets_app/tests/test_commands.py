from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from secrets_app import services
from secrets_app.models import SecretMetadata

pytestmark = pytest.mark.django_db


def make_due(secret: SecretMetadata) -> None:
    SecretMetadata.objects.filter(pk=secret.pk).update(
        last_rotated=timezone.now() - timedelta(days=(secret.rotation_policy_days or 0) + 1)
    )


def test_rotate_due_secrets_rotates_only_what_is_due(admin_user):
    due = services.create_secret(
        "due", "v", actor=admin_user, backend="local", provider="internal", rotation_policy_days=7
    )
    services.create_secret("fresh", "v", actor=admin_user, backend="local", rotation_policy_days=7)
    services.create_secret("never", "v", actor=admin_user, backend="local", rotation_policy_days=0)
    make_due(due)
    out = StringIO()
    call_command("rotate_due_secrets", stdout=out)
    assert "rotated due" in out.getvalue()
    assert "1 rotated, 0 failed, 0 reminded" in out.getvalue()
    assert dict(SecretMetadata.objects.values_list("secret_name", "current_version")) == {
        "due": 2,
        "fresh": 1,
        "never": 1,
    }


def test_rotate_due_secrets_exits_non_zero_when_one_fails(admin_user, flaky_rotator):
    bad = services.create_secret(
        "bad", "v", actor=admin_user, backend="local", provider="flaky", rotation_policy_days=1
    )
    good = services.create_secret(
        "good", "v", actor=admin_user, backend="local", provider="internal", rotation_policy_days=1
    )
    make_due(bad)
    make_due(good)
    err = StringIO()
    with pytest.raises(CommandError, match="1 rotation"):
        call_command("rotate_due_secrets", stdout=StringIO(), stderr=err)
    assert "FAILED  bad" in err.getvalue()
    good.refresh_from_db()
    assert good.current_version == 2


def test_system_checks_catch_bad_secrets_settings(settings):
    from secrets_app.apps import check_settings

    assert check_settings() == []
    settings.SECRETS_ROTATORS = {"openai": "no.such.module.rotate"}
    assert {m.id for m in check_settings()} == {"secrets.E002"}
    # The old fallback entry serves nothing now: said, not silently ignored.
    settings.SECRETS_ROTATORS = {"default": "secrets_app.rotators.random_urlsafe"}
    assert {m.id for m in check_settings()} == {"secrets.W001"}
    settings.SECRETS_ROTATORS = {"internal": "secrets_app.rotators.random_urlsafe"}
    settings.VAULT_TOKEN = None
    settings.VAULT_ROLE_ID = None
    assert [m.id for m in check_settings()] == ["secrets.W001"]
