"""GET /api/v1/secrets/<name>: grants, sealing, signing, errors, and an audit row for every answer.

The attacks on sealed answers (forged, replayed, another agent's or secret's, rolled back) are
played here against the site's real answers, with the agents' real client as the judge.
"""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.urls import reverse

from audit_app.models import AuditLog, SuspiciousActivity
from foundation_client import (
    ClientSettings,
    SealingError,
    SecretsClient,
    SecretUnavailable,
    generate_keypair,
)
from foundation_client.protocol import RotationNotice, SecretAnswer, sealing_context
from foundation_client.protocol.answers import load_site_public_key
from foundation_client.protocol.sealing import load_public_key, open_sealed, seal
from foundation_core import signing
from secrets_app import services
from secrets_app.backends import vault

pytestmark = pytest.mark.django_db

NONCE = "the-agents-nonce-0000001"


@pytest.fixture
def secret(admin_user, vault_prefix):
    return services.create_secret(
        "openai_api_key", "sk-api-value", actor=admin_user, backend="vault"
    )


def get(client, name: str, token: str | None, nonce: str | None = NONCE, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    query = f"?nonce={nonce}" if nonce is not None else ""
    return client.get(
        f"/api/v1/secrets/{name}{query}", REMOTE_ADDR="203.0.113.9", **headers, **extra
    )


def signed_by_the_site(body: dict) -> bool:
    site_key = load_site_public_key(signing.site_public_key())
    return SecretAnswer.from_body(body).verify([site_key])


def reads() -> list[tuple]:
    rows = AuditLog.objects.filter(event_type="secrets.read").order_by("id")
    return list(rows.values_list("actor", "resource", "success", "error_message"))


def test_a_granted_agent_reads_the_current_value(client, secret, make_agent):
    agent, token = make_agent(grants=["openai_api_key"])
    response = get(client, "openai_api_key", token)
    assert response.status_code == 200
    body = response.json()
    assert body.pop("signature")["alg"] == "Ed25519"
    assert body == {
        "agent": "ai_manager",
        "name": "openai_api_key",
        "version": 1,
        "nonce": NONCE,
        "value": "sk-api-value",
    }
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
    async def explode(secret, version):
        raise KeyError("data")

    monkeypatch.setattr(vault, "read_async", explode)
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
    assert signed_by_the_site(body)
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
    assert set(operation["responses"]) >= {"200", "400", "401", "403", "404", "429", "503"}
    nonce = next(p for p in operation["parameters"] if p["name"] == "nonce")
    assert (nonce["in"], nonce["required"]) == ("query", False)
    answer = schema["components"]["schemas"]["SecretOut"]["properties"]
    assert set(answer) == {"agent", "name", "version", "nonce", "value", "sealed", "signature"}
    # The endpoint names a bearer scheme (an `or` here once passed any scheme at all).
    schemes = schema["components"]["securitySchemes"]
    (bearer,) = [
        n for n, s in schemes.items() if (s["type"], s.get("scheme")) == ("http", "bearer")
    ]
    assert operation["security"] == [{bearer: []}]


# --- Signed answers -------------------------------------------------------------------------


def test_every_answer_is_signed_over_the_request_nonce(client, secret, make_agent):
    _, token = make_agent()
    one = get(client, "openai_api_key", token, nonce="A" * 22).json()
    two = get(client, "openai_api_key", token, nonce="B" * 22).json()
    assert (one["nonce"], two["nonce"]) == ("A" * 22, "B" * 22)
    assert signed_by_the_site(one)
    assert signed_by_the_site(two)
    assert one["signature"] != two["signature"]


def test_a_read_without_a_nonce_is_signed_over_an_empty_one(client, secret, make_agent):
    # What an agent that predates signed answers gets: its client ignores the signature.
    _, token = make_agent()
    body = get(client, "openai_api_key", token, nonce=None).json()
    assert (body["nonce"], body["value"]) == ("", "sk-api-value")
    assert signed_by_the_site(body)


@pytest.mark.parametrize(
    "nonce", ["", "short", "x" * 129, "bad nonce with spaces!!", "é" * 20, "n" * 20 + "%0A"]
)
def test_a_malformed_nonce_is_400_and_audited_without_reading(client, secret, make_agent, nonce):
    _, token = make_agent()
    response = get(client, "openai_api_key", token, nonce=nonce)
    assert response.status_code == 400
    assert "nonce must match" in response.json()["detail"]
    assert b"sk-api-value" not in response.content
    assert reads() == [("ai_manager", "secret:openai_api_key", False, "malformed nonce")]


def test_the_site_public_key_is_the_signing_keys(settings):
    key = Ed25519PrivateKey.generate()
    settings.FOUNDATION_SITE_SIGNING_KEY = key.private_bytes_raw()
    assert load_site_public_key(signing.site_public_key()) == key.public_key()
    answer = SecretAnswer(agent="a", name="n", version=1, nonce="", value="v")
    assert signing.sign(answer).verify([key.public_key()])


class Captured:
    """A man in the middle: serves the agent whatever answers it holds, whatever was asked."""

    def __init__(self) -> None:
        self.answers: list[dict] = []

    async def get_json(self, path: str):
        assert f"nonce={NONCE}" in path
        return 200, self.answers.pop(0)

    async def close(self) -> None:
        pass


@pytest.fixture
def pinned_agent(monkeypatch):
    """Make (SecretsClient, Captured): an agent named ai_manager that pins the site's key and
    sends NONCE with every read, so that the site's answers to it can be captured beforehand."""
    monkeypatch.setattr("foundation_client._secrets.new_nonce", lambda: NONCE)

    def make(private_key: str | None = None):
        settings = ClientSettings(
            agent_name="ai_manager",
            agent_token="seen-by-the-middle",
            private_key=private_key,
            site_public_key=signing.site_public_key(),
        )
        middle = Captured()
        agent = SecretsClient(settings, transport=middle, listen=False, ttl=0, stale_if_error=0)
        return agent, middle

    return make


def agent_read(agent: SecretsClient, name: str = "openai_api_key") -> str:
    return asyncio.run(agent.get(name))


def refusal(agent: SecretsClient, name: str = "openai_api_key") -> str:
    with pytest.raises(SecretUnavailable) as excinfo:
        agent_read(agent, name)
    return excinfo.value.reason


def test_a_pinned_agent_accepts_the_sites_sealed_answer_to_its_request(
    client, secret, make_agent, pinned_agent
):
    private, public = generate_keypair()
    _, token = make_agent(public_key=public)
    agent, middle = pinned_agent(private)
    middle.answers.append(get(client, "openai_api_key", token).json())
    assert agent_read(agent) == "sk-api-value"


@pytest.mark.parametrize("signer", [None, "another key"])
def test_a_value_sealed_to_the_agent_by_someone_else_is_refused(
    client, secret, make_agent, pinned_agent, signer
):
    private, public = generate_keypair()
    _, token = make_agent(public_key=public)
    agent, middle = pinned_agent(private)
    genuine = SecretAnswer.from_body(get(client, "openai_api_key", token).json())
    # Everything as the site would send it, but the value sealed by whoever holds the public key.
    forged = SecretAnswer(
        agent="ai_manager",
        name="openai_api_key",
        version=genuine.version,
        nonce=NONCE,
        sealed=seal(
            b"attacker-chosen",
            load_public_key(public),
            sealing_context("openai_api_key", genuine.version),
        ),
    )
    if signer is not None:
        forged = forged.signed_with(Ed25519PrivateKey.generate())
    middle.answers.append(forged.to_body())
    reason = refusal(agent)
    assert reason.startswith("unsigned answer" if signer is None else "forged or altered answer")


def test_an_answer_captured_for_another_request_is_refused(
    client, secret, make_agent, pinned_agent
):
    private, public = generate_keypair()
    _, token = make_agent(public_key=public)
    agent, middle = pinned_agent(private)
    captured = get(client, "openai_api_key", token, nonce="N1-an-earlier-request").json()
    middle.answers.append(captured)
    assert refusal(agent).startswith("replayed answer")


def test_an_answer_made_for_another_agent_is_refused(client, secret, make_agent, pinned_agent):
    # The middle asks the site with another agent's token, for this agent's very nonce.
    _, other_token = make_agent(name="other_agent")
    agent, middle = pinned_agent()
    middle.answers.append(get(client, "openai_api_key", other_token).json())
    assert refusal(agent) == "answer made for agent 'other_agent', not 'ai_manager'"


def test_an_answer_for_another_secret_is_refused(
    client, admin_user, secret, make_agent, pinned_agent
):
    services.create_secret("decoy", "decoy-value", actor=admin_user, backend="local")
    _, token = make_agent()
    agent, middle = pinned_agent()
    middle.answers.append(get(client, "decoy", token).json())
    assert refusal(agent) == "answer for secret 'decoy', not the one asked for"


def test_a_lower_version_is_refused_until_a_deletion_notice_resets_the_floor(
    client, admin_user, make_agent, pinned_agent
):
    secret = services.create_secret("phoenix", "first", actor=admin_user, backend="local")
    services.set_value(secret, "second", actor=admin_user)
    _, token = make_agent()
    agent, middle = pinned_agent()
    middle.answers.append(get(client, "phoenix", token).json())
    assert agent_read(agent, "phoenix") == "second"

    # Deleted and created anew: the site now answers version 1, signed for this very request.
    services.delete_secret(secret, actor=admin_user)
    services.create_secret("phoenix", "reborn", actor=admin_user, backend="local")
    reborn = get(client, "phoenix", token).json()
    assert reborn["version"] == 1
    middle.answers += [reborn, reborn]  # asked twice before it is refused
    assert refusal(agent, "phoenix") == (
        "version 1 is older than version 2 already seen or announced "
        "(a replayed or rolled-back answer)"
    )

    agent._on_notice(RotationNotice("phoenix", 0).encode())  # the deletion notice, heard
    middle.answers.append(reborn)
    assert agent_read(agent, "phoenix") == "reborn"


def test_with_every_cache_off_a_read_asks_the_database_twice(
    client, secret, make_agent, settings, django_assert_num_queries
):
    """The agent, its grants and the secret's row in one query; the audit row in another. The
    value comes from Vault every time."""
    settings.AGENT_AUTH_CACHE_SECONDS = 0
    settings.SECRETS_SITE_CACHE_SECONDS = 0
    _, token = make_agent(grants=["openai_api_key"])
    assert get(client, "openai_api_key", token).status_code == 200  # marks the first read
    services.set_value(secret, "sk-api-value-2", actor="test")  # Vault's, not a cache's
    with django_assert_num_queries(2):
        answer = get(client, "openai_api_key", token)
    assert answer.json()["value"] == "sk-api-value-2"
    assert answer.json()["version"] == 2
    _, denied = make_agent(name="denied_agent", grants=["other"])
    with django_assert_num_queries(2):  # refused, and audited, without a look at the value
        assert get(client, "openai_api_key", denied).status_code == 403
    assert AuditLog.objects.filter(event_type="secrets.read").count() == 3
