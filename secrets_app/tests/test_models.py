from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from secrets_app.models import SecretMetadata

pytestmark = pytest.mark.django_db


def test_a_new_secret_gets_the_seed_default_policy_of_90_days():
    secret = SecretMetadata.objects.create(secret_name="openai_api_key")
    secret.refresh_from_db()
    assert secret.rotation_policy_days == 90
    assert str(secret) == "openai_api_key"


def test_rotation_is_due_policy_days_after_the_last_rotation():
    rotated = timezone.now() - timedelta(days=10)
    secret = SecretMetadata.objects.create(
        secret_name="db", last_rotated=rotated, rotation_policy_days=30
    )
    assert secret.rotation_due_at() == rotated + timedelta(days=30)


def test_a_never_rotated_secret_counts_from_its_creation():
    secret = SecretMetadata.objects.create(secret_name="db", rotation_policy_days=7)
    secret.refresh_from_db()
    assert secret.rotation_due_at() == secret.created_at + timedelta(days=7)


def test_no_policy_means_no_due_date():
    secret = SecretMetadata.objects.create(secret_name="db", rotation_policy_days=None)
    assert secret.rotation_due_at() is None
