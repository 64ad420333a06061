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
