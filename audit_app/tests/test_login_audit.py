"""Admin log-in, failed log-in and log-out each leave an audit row."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from audit_app.models import AuditLog

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) FoundationTest/1.0"


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_superuser("alice", "alice@example.com", "correct-horse-battery")


def log_in(client: Client, username: str, password: str):
    return client.post(
        reverse("admin:login"),
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR="198.51.100.23",
        HTTP_USER_AGENT=BROWSER,
    )


def test_a_failed_log_in_is_recorded_with_ip_and_user_agent(client, alice):
    response = log_in(client, "alice", "wrong")
    assert response.status_code == 200  # the form again, with an error
    row = AuditLog.objects.exclude(event_type="auth.change").get()
    assert row.event_type == "auth.login"
    assert row.action == "login"
    assert row.actor == "alice"
    assert row.success is False
    assert row.ip_address == "198.51.100.23"
    assert row.user_agent == BROWSER
    assert row.error_message == "invalid credentials"


def test_the_password_tried_is_never_recorded(client, alice):
    log_in(client, "alice", "Tr0ub4dor&3-canary")
    row = AuditLog.objects.exclude(event_type="auth.change").get()
    assert "canary" not in str(row.metadata) + str(row.error_message)


def test_an_unknown_user_name_is_recorded_too(client, db):
    log_in(client, "nobody", "whatever")
    assert AuditLog.objects.exclude(event_type="auth.change").get().actor == "nobody"


def test_a_successful_log_in_and_the_log_out_are_recorded(client, alice):
    response = log_in(client, "alice", "correct-horse-battery")
    assert response.status_code == 302
    client.post(reverse("admin:logout"), REMOTE_ADDR="198.51.100.23", HTTP_USER_AGENT=BROWSER)
    rows = list(
        AuditLog.objects.exclude(event_type="auth.change")
        .order_by("id")
        .values_list("action", "actor", "success", "ip_address")
    )
    assert rows == [
        ("login", "alice", True, "198.51.100.23"),
        ("logout", "alice", True, "198.51.100.23"),
    ]
