"""The Vault backend against the real OpenBao dev server, and its failures."""

from __future__ import annotations

import hvac
import pytest
from django.conf import settings

from secrets_app import services
from secrets_app.backends import vault
from secrets_app.exceptions import BackendUnavailable, SecretDoesNotExist

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_client():
    vault.reset_client()
    yield
    vault.reset_client()


def direct_read(path: str) -> dict:
    client = hvac.Client(url=settings.VAULT_ADDR, token=settings.VAULT_TOKEN)
    return client.secrets.kv.v2.read_secret_version(
        path=path, mount_point=settings.SECRETS_VAULT_MOUNT, raise_on_deleted_version=True
    )["data"]


def test_values_live_in_kv_v2_under_the_prefix(vault_prefix, admin_user):
    secret = services.create_secret("openai_api_key", "sk-live", actor=admin_user, backend="vault")
    services.set_value(secret, "sk-next", actor=admin_user)
    stored = direct_read(f"{vault_prefix}/openai_api_key")
    assert stored["data"] == {"value": "sk-next"}
    assert stored["metadata"]["version"] == 2


def test_a_version_vault_does_not_have_is_reported_missing(vault_prefix, admin_user):
    secret = services.create_secret("k", "v", actor=admin_user, backend="vault")
    with pytest.raises(SecretDoesNotExist, match="version 9"):
        vault.VaultBackend().read(secret, 9)


def test_an_unreachable_vault_is_unavailable_with_a_clean_message(
    settings, vault_prefix, admin_user
):
    secret = services.create_secret("k", "secret-canary", actor=admin_user, backend="vault")
    settings.VAULT_ADDR = "http://127.0.0.1:9"  # nothing listens on the discard port
    vault.reset_client()
    with pytest.raises(BackendUnavailable, match="unreachable") as excinfo:
        services.read_value(secret)
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__
    assert "secret-canary" not in str(excinfo.value)


def test_a_bad_token_is_unavailable_not_a_crash(settings, vault_prefix, admin_user):
    secret = services.create_secret("k", "v", actor=admin_user, backend="vault")
    settings.VAULT_TOKEN = "not-a-valid-token"
    vault.reset_client()
    with pytest.raises(BackendUnavailable, match="permission denied"):
        services.read_value(secret)


def test_approle_login_is_used_when_configured(settings, vault_prefix, admin_user):
    root = hvac.Client(url=settings.VAULT_ADDR, token=settings.VAULT_TOKEN)
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    root.sys.create_or_update_policy(
        "foundation-test",
        'path "secret/data/*" { capabilities = ["create", "read", "update"] }\n'
        'path "secret/metadata/*" { capabilities = ["create", "read", "update", "delete"] }',
    )
    root.auth.approle.create_or_update_approle(
        "foundation-test", token_policies=["foundation-test"]
    )
    role_id = root.auth.approle.read_role_id("foundation-test")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("foundation-test")["data"]["secret_id"]
    settings.VAULT_TOKEN = None
    settings.VAULT_ROLE_ID = role_id
    settings.VAULT_SECRET_ID = secret_id
    vault.reset_client()
    secret = services.create_secret("via_approle", "v", actor=admin_user, backend="vault")
    assert services.read_value(secret) == "v"
    assert vault.client().token != root.token


def test_the_environment_is_read_once_with_its_precedence_kept(monkeypatch, settings):
    """Proxies and the CA bundle come from the environment as requests would take them, read
    when the client is made rather than on every call (that cost a third of a read)."""
    settings.VAULT_ADDR = "https://vault.example:8200"
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    settings.VAULT_CACERT = settings.VAULT_CAPATH = None
    session, verify = vault._session()
    assert session.trust_env is False
    assert session.proxies["https"] == "http://proxy.example:3128"
    assert verify == "/etc/ssl/bundle.pem"
    settings.VAULT_CAPATH = "/etc/vault/ca.d"
    assert vault._session()[1] == "/etc/vault/ca.d"
    settings.VAULT_CACERT = "/etc/vault/ca.pem"  # hvac's order: CACERT wins
    assert vault._session()[1] == "/etc/vault/ca.pem"
    monkeypatch.setenv("NO_PROXY", "vault.example")
    assert "https" not in vault._session()[0].proxies


def test_a_vault_that_never_answers_times_out_cleanly(settings, vault_prefix, admin_user):
    import socket

    secret = services.create_secret("k", "secret-canary", actor=admin_user, backend="vault")
    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings.VAULT_ADDR = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings.VAULT_TIMEOUT = 1
        vault.reset_client()
        with pytest.raises(BackendUnavailable, match="did not answer in time"):
            vault.VaultBackend().read(secret, 1)


def _dead_proxy(monkeypatch, no_proxy: str = "") -> None:
    for name in ("HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", no_proxy)
    vault.reset_client()


def test_a_proxy_in_the_environment_is_used_for_reads(monkeypatch, vault_prefix, admin_user):
    """Reads go where requests would send them: through the environment's proxy (here one
    that is not there) for Vault's address."""
    secret = services.create_secret("k", "v", actor=admin_user, backend="vault")
    assert vault.VaultBackend().read(secret, 1) == "v"
    _dead_proxy(monkeypatch)
    with pytest.raises(BackendUnavailable, match="unreachable"):
        vault.VaultBackend().read(secret, 1)


def test_no_proxy_for_vaults_host_reads_directly(monkeypatch, vault_prefix, admin_user):
    secret = services.create_secret("k", "direct", actor=admin_user, backend="vault")
    _dead_proxy(monkeypatch, no_proxy="127.0.0.1,localhost")
    assert vault.VaultBackend().read(secret, 1) == "direct"


def test_a_redirect_from_a_standby_is_followed(settings, vault_prefix, admin_user):
    """A standby answers 307 to the active node: the read follows it, as hvac does."""
    import http.server
    import threading

    secret = services.create_secret("k", "through-the-standby", actor=admin_user, backend="vault")
    active = settings.VAULT_ADDR

    class Standby(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(307)
            self.send_header("Location", active + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Standby)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings.VAULT_ADDR = f"http://127.0.0.1:{server.server_address[1]}"
        vault.reset_client()
        assert vault.VaultBackend().read(secret, 1) == "through-the-standby"
    finally:
        server.shutdown()
        server.server_close()
