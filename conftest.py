"""Fixtures every test module can use: the three users that every admin page is tested with."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client


@pytest.fixture
def staff_user(db) -> User:
    """Staff without any permission: may log in to the admin, may see nothing in it."""
    return User.objects.create_user("staffer", password="staff-pass-123", is_staff=True)


@pytest.fixture
def outsider(db) -> User:
    """A user who is not staff at all."""
    return User.objects.create_user("outsider", password="outsider-pass-123")


@pytest.fixture
def staff_client(staff_user) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def outsider_client(outsider) -> Client:
    client = Client()
    client.force_login(outsider)
    return client


# --- Secrets and agents ----------------------------------------------------------------------


@pytest.fixture
def vault_prefix(settings) -> str:
    """A Vault path prefix of the test's own, so tests never see each other's secrets."""
    import uuid

    settings.SECRETS_VAULT_PREFIX = f"test-{uuid.uuid4().hex[:12]}"
    return settings.SECRETS_VAULT_PREFIX


@pytest.fixture
def make_agent(db):
    """Create an agent with grants; returns (agent, token)."""
    from agents_app.services import create_agent

    def make(name: str = "ai_manager", grants=("*",), public_key: str = ""):
        return create_agent(name, actor="test", grants=grants, public_key=public_key)

    return make


@pytest.fixture
def redis_conn():
    from foundation_site.redis_client import get_redis

    return get_redis()
