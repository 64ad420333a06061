from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from foundation_client import ClientSettings, ConfigurationError, FoundationError


def test_it_reads_foundation_variables():
    settings = ClientSettings.from_env(
        {
            "FOUNDATION_AGENT_NAME": "ai_manager",
            "FOUNDATION_API_URL": "https://foundation.example",
            "FOUNDATION_REDIS_URL": "rediss://cache:6380/2",
            "FOUNDATION_AGENT_TOKEN": "tok",
        }
    )
    assert settings.agent_name == "ai_manager"
    assert settings.api_url == "https://foundation.example"
    assert settings.redis_url == "rediss://cache:6380/2"
    assert settings.agent_token == "tok"


def test_it_reads_the_token_from_a_file(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    settings = ClientSettings.from_env(
        {"FOUNDATION_AGENT_NAME": "a", "FOUNDATION_AGENT_TOKEN_FILE": str(token_file)}
    )
    assert settings.agent_token == "from-file"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "FOUNDATION_AGENT_NAME"),
        ({"FOUNDATION_AGENT_NAME": "Bad Name"}, "FOUNDATION_AGENT_NAME"),
        ({"FOUNDATION_AGENT_NAME": "a", "FOUNDATION_API_URL": "ftp://x"}, "FOUNDATION_API_URL"),
        (
            {"FOUNDATION_AGENT_NAME": "a", "FOUNDATION_REDIS_URL": "localhost"},
            "FOUNDATION_REDIS_URL",
        ),
        (
            {"FOUNDATION_AGENT_NAME": "a", "FOUNDATION_AGENT_TOKEN_FILE": "/nonexistent/t"},
            "FOUNDATION_AGENT_TOKEN_FILE",
        ),
        (
            {
                "FOUNDATION_AGENT_NAME": "a",
                "FOUNDATION_AGENT_TOKEN": "x",
                # Never opened: refused before, for coming with the variable itself.
                "FOUNDATION_AGENT_TOKEN_FILE": "/tmp/t",  # nosec B108
            },
            "FOUNDATION_AGENT_TOKEN",
        ),
    ],
)
def test_bad_settings_name_the_variable(env, variable):
    with pytest.raises(ConfigurationError) as excinfo:
        ClientSettings.from_env(env)
    assert excinfo.value.variable == variable
    assert str(excinfo.value).startswith(variable)
    assert isinstance(excinfo.value, FoundationError)


def test_the_token_never_shows_in_repr():
    settings = ClientSettings(agent_name="a", agent_token="super-secret-token")
    assert "super-secret-token" not in repr(settings)
    assert "agent_token=<set>" in repr(settings)


def site_public_key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    return base64.urlsafe_b64encode(raw).decode()


def test_it_pins_the_site_public_key_from_the_environment_or_a_file(tmp_path):
    one, two = site_public_key(), site_public_key()
    settings = ClientSettings.from_env(
        {"FOUNDATION_AGENT_NAME": "a", "FOUNDATION_SITE_PUBLIC_KEY": one}
    )
    assert settings.site_public_key == one
    assert len(settings.site_public_keys()) == 1
    key_file = tmp_path / "site.pub"
    key_file.write_text(f"{one}, {two}\n")  # both while the site's key is rotated
    settings = ClientSettings.from_env(
        {"FOUNDATION_AGENT_NAME": "a", "FOUNDATION_SITE_PUBLIC_KEY_FILE": str(key_file)}
    )
    assert len(settings.site_public_keys()) == 2
    assert ClientSettings(agent_name="a").site_public_keys() == ()


@pytest.mark.parametrize("bad", ["not-a-key", "A" * 44 + ",x"])
def test_a_malformed_site_public_key_names_the_variable(bad):
    with pytest.raises(ConfigurationError) as excinfo:
        ClientSettings.from_env({"FOUNDATION_AGENT_NAME": "a", "FOUNDATION_SITE_PUBLIC_KEY": bad})
    assert excinfo.value.variable == "FOUNDATION_SITE_PUBLIC_KEY"
    assert bad not in str(excinfo.value)


def test_a_bad_redis_url_is_refused_without_showing_its_password():
    env = {"FOUNDATION_AGENT_NAME": "a", "FOUNDATION_REDIS_URL": "http://agent-a:pw-canary@host"}
    with pytest.raises(ConfigurationError) as excinfo:
        ClientSettings.from_env(env)
    assert "pw-canary" not in str(excinfo.value)
    assert "***@host" in str(excinfo.value)
