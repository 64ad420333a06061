"""Site-level views and the `ensure_admin` command."""

from __future__ import annotations

from io import StringIO
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db.utils import OperationalError

from audit_app.models import AuditLog

pytestmark = pytest.mark.django_db


def test_the_home_page_leads_to_the_admin(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_healthz_answers_ok_when_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_answers_503_when_the_database_fails(client):
    with mock.patch("foundation_site.views.connection.cursor", side_effect=OperationalError("x")):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "OperationalError"}


def test_ensure_admin_creates_one_admin_and_prints_its_password_once():
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    user = User.objects.get()
    assert user.username == "admin"
    assert user.is_superuser
    password = out.getvalue().split("password: ")[1].split()[0]
    assert user.check_password(password)
    again = StringIO()
    call_command("ensure_admin", stdout=again)
    assert "exists already" in again.getvalue()
    assert password not in again.getvalue()
    assert User.objects.count() == 1
    row = AuditLog.objects.get(event_type="auth.account")
    assert password not in str(row.metadata)


def test_ensure_admin_takes_the_account_from_the_environment(monkeypatch):
    monkeypatch.setenv("FOUNDATION_ADMIN_USERNAME", "ops")
    monkeypatch.setenv("FOUNDATION_ADMIN_PASSWORD", "from-the-environment-123")
    call_command("ensure_admin", stdout=StringIO())
    assert User.objects.get(username="ops").check_password("from-the-environment-123")


def test_ensure_admin_refuses_half_an_account(monkeypatch):
    monkeypatch.setenv("FOUNDATION_ADMIN_USERNAME", "ops")
    monkeypatch.delenv("FOUNDATION_ADMIN_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="FOUNDATION_ADMIN_PASSWORD"):
        call_command("ensure_admin", stdout=StringIO())
    assert not User.objects.exists()


def test_the_agent_api_answers_the_protocol_versions_it_serves(client):
    from agents_app.wire import SERVED_PROTOCOL_VERSIONS
    from foundation_client.protocol import PROTOCOL_API_PATH, decode_served

    response = client.get(PROTOCOL_API_PATH)  # no token: the versions are no secret
    assert response.status_code == 200
    assert decode_served(response.json()) == SERVED_PROTOCOL_VERSIONS
