"""GET /api/v1/secrets/<name>: grants, sealing, errors, and an audit row for every answer."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit_app.models import AuditLog, SuspiciousActivity
from foundation_client import SealingError, generate_keypair
from foundation_client.protocol import open_sealed, sealing_context
from secrets_app import services
from secrets_app.backends import vault

pytestmark = pytest.mark.django_db


@pytest.fixture
def secret(admin_user, vault_prefix):
    return services.create_secret(
        "openai_api_key", "sk-api-value", actor=admin_user, backend="vault"
    )


def get(client, name: str, token: str | None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get(f"/api/v1/secrets/{name}", REMOTE_ADDR="203.0.113.9", **headers, **extra)


def reads() -> list[tuple]:
    rows = AuditLog.objects.filter(event_type="secrets.read").order_by("id")
    return list(rows.values_list("actor", "resource", "success", "error_message"))


def test_a_granted_agent_reads_the_current_value(client, secret, make_agent):
    agent, token = make_agent(grants=["openai_api_key"])
    response = get(client, "openai_api_key", token)
    assert response.status_code == 200
    assert response.json() == {"name": "openai_api_key", "version": 1, "value": "sk-api-value"}
    assert reads() == [("ai_manager", "secret:openai_api_key", True, None)]
    secret.refresh_from_db()
    assert (secret.last_read_by, secret.last_read_at is not None) == ("ai_manager", True)
    agent.refresh_from_db()
    assert agent.last_seen_at is not None


def test_a_prefix_grant_covers_the_names_under_it(client, admin_user, make_agent, vault_prefix):
    services.create_secret("openai/prod", "x", actor=admin_user, backend="local")
    _, token = make_agent(grants=["openai/*"])
    assert get(client, "openai%2Fprod", token).status_code == 200


def test_a_read_without_a_grant_is_403_and_audited(client, secret, make_agent):
    _, token = make_agent(grants=["other_*"])
    response = get(client, "openai_api_key", token)
    assert response.status_code == 403
    assert response.json() == {"detail": "no grant for this secret"}
    assert b"sk-api-value" not in response.content
    row = AuditLog.objects.get(event_type="secrets.read")
    assert (row.actor, row.success, row.ip_address) == ("ai_manager", False, "203.0.113.9")
    assert "no grant" in row.error_message


def test_a_missing_secret_without_a_grant_is_403_not_404(client, make_agent):
    _, token = make_agent(grants=["openai_api_key"])
    assert get(client, "does_not_exist", token).status_code == 403


def test_a_missing_secret_with_a_grant_is_404_and_audited(client, make_agent):
    _, token = make_agent(grants=["*"])
    response = get(client, "does_not_exist", token)
    assert response.status_code == 404
    assert reads()[0][2] is False


@pytest.mark.parametrize(
    ("token", "reason"), [(None, "no agent token"), ("fdn_wrong", "invalid agent token")]
)
def test_a_missing_or_wrong_token_is_401_and_audited(client, secret, token, reason):
    response = get(client, "openai_api_key", token)
    assert response.status_code == 401
    assert reads() == [("(unknown agent)", "secret:openai_api_key", False, reason)]


def test_a_disabled_agent_is_refused_under_its_own_name(client, secret, make_agent):
    agent, token = make_agent()
    agent.is_active = False
    agent.save()
    response = get(client, "openai_api_key", token)
    assert response.status_code == 403
    assert response.json() == {"detail": "agent is disabled"}
    assert reads() == [
        ("ai_manager", "secret:openai_api_key", False, "AccessDenied: agent is disabled")
    ]


def test_an_invalid_name_is_404_and_audited_without_the_name(client, make_agent):
    _, token = make_agent()
    response = get(client, "bad%00name", token)
    assert response.status_code == 404
    assert reads() == [
        (
            "ai_manager",
            "secret:(invalid name)",
            False,
            "SecretDoesNotExist: secret '(invalid name)' does not exist",
        )
    ]


def test_an_unexpected_backend_failure_is_503_and_audited(client, secret, make_agent, monkeypatch):
    from secrets_app.backends.vault import VaultBackend

    def explode(self, secret, version):
        raise KeyError("data")

    monkeypatch.setattr(VaultBackend, "read", explode)
    _, token = make_agent()
    response = get(client, "openai_api_key", token)
    assert response.status_code == 503
    assert reads() == [("ai_manager", "secret:openai_api_key", False, "internal error (KeyError)")]


def test_five_denied_reads_put_the_agent_on_the_suspicious_page(
    client, admin_client, secret, make_agent
):
    _, token = make_agent(name="curious_agent", grants=["nothing"])
    for _ in range(5):
        assert get(client, "openai_api_key", token).status_code == 403
    assert SuspiciousActivity.objects.get().actor == "curious_agent"
    page = admin_client.get(reverse("admin:audit_app_suspiciousactivity_changelist"))
    assert b"curious_agent" in page.content


def test_a_sealed_value_opens_with_the_agents_key_and_no_other(client, secret, make_agent):
    private, public = generate_keypair()
    _, token = make_agent(public_key=public)
    response = get(client, "openai_api_key", token)
    body = response.json()
    assert "value" not in body
    assert b"sk-api-value" not in response.content
    context = sealing_context("openai_api_key", body["version"])
    assert open_sealed(body["sealed"], private, context) == b"sk-api-value"
    other_private, _ = generate_keypair()
    with pytest.raises(SealingError):
        open_sealed(body["sealed"], other_private, context)
    with pytest.raises(SealingError):  # bound to this secret and version
        open_sealed(body["sealed"], private, sealing_context("openai_api_key", 2))


def test_vault_down_is_503_without_a_traceback_and_audited(client, settings, secret, make_agent):
    _, token = make_agent()
    settings.VAULT_ADDR = "http://127.0.0.1:9"
    vault.reset_client()
    try:
        response = get(client, "openai_api_key", token)
    finally:
        vault.reset_client()
    assert response.status_code == 503
    assert response.json() == {"detail": "the secret store is unavailable"}
    actor, _, success, error = reads()[0]
    assert (actor, success) == ("ai_manager", False)
    assert "unreachable" in error


def test_the_openapi_document_describes_the_secrets_endpoint(client):
    schema = client.get("/api/v1/openapi.json").json()
    operation = schema["paths"]["/api/v1/secrets/{name}"]["get"]
    assert set(operation["responses"]) >= {"200", "401", "403", "404", "503"}
    assert (
        "BearerAuth" in str(schema["components"]["securitySchemes"])
        or schema["components"]["securitySchemes"]
    )
