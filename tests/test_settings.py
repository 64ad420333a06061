"""Bad configuration stops start-up at once, naming the variable; good production values pass
``check --deploy`` without a warning."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD_SECRET = "k" * 20 + "abcdefghijklmnopqrstuvwxyz0123456789"
GOOD_MASTER = base64.urlsafe_b64encode(b"\x01" * 32).decode()
GOOD_SIGNING = base64.urlsafe_b64encode(b"\x02" * 32).decode()

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": GOOD_SECRET,
    "ALLOWED_HOSTS": "foundation.example.com",
    "FOUNDATION_MASTER_KEY": GOOD_MASTER,
    "FOUNDATION_SITE_SIGNING_KEY": GOOD_SIGNING,
    "DATABASE_URL": "sqlite:////tmp/foundation-settings-test.db",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "VAULT_ADDR": "https://vault.example.com:8200",
}


def run_django(
    env_overrides: dict[str, str | None], *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in PRODUCTION and not k.endswith("_FILE") and k != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    env |= PRODUCTION
    env["FOUNDATION_ENV_FILE"] = ""
    env["DJANGO_SETTINGS_MODULE"] = "foundation_site.settings"
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    command = list(args) or ["-c", "import django; django.setup(); print('configured')"]
    return subprocess.run(
        [sys.executable, *command],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_values_start():
    result = run_django({})
    assert result.returncode == 0, result.stderr
    assert "configured" in result.stdout


def test_check_deploy_reports_nothing_with_production_values():
    result = run_django({}, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"SECRET_KEY": None}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"ALLOWED_HOSTS": None}, "ALLOWED_HOSTS"),
        ({"FOUNDATION_MASTER_KEY": None}, "FOUNDATION_MASTER_KEY"),
        ({"FOUNDATION_MASTER_KEY": "not-base64-and-too-short"}, "FOUNDATION_MASTER_KEY"),
        (
            {"FOUNDATION_MASTER_KEY": base64.urlsafe_b64encode(b"x" * 16).decode()},
            "FOUNDATION_MASTER_KEY",
        ),
        ({"FOUNDATION_SITE_SIGNING_KEY": None}, "FOUNDATION_SITE_SIGNING_KEY"),
        ({"FOUNDATION_SITE_SIGNING_KEY": "too-short"}, "FOUNDATION_SITE_SIGNING_KEY"),
        ({"DEBUG": "ture"}, "DEBUG"),
        ({"DATABASE_URL": "mysqlx://db/x"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://127.0.0.1:port/0"}, "REDIS_URL"),
        ({"VAULT_ADDR": "vault:8200"}, "VAULT_ADDR"),
        ({"VAULT_CACERT": "/nonexistent/vault-ca.pem"}, "VAULT_CACERT"),
        ({"SECRET_KEY_FILE": "/nonexistent/secret"}, "SECRET_KEY_FILE"),
        (
            {"DATABASE_POOL_SIZE": "many", "DATABASE_URL": "postgres://u@127.0.0.1:5432/x"},
            "DATABASE_POOL_SIZE",
        ),
        ({"SECURE_HSTS_SECONDS": "-5"}, "SECURE_HSTS_SECONDS"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"MESSAGE_LOG_RETENTION_DAYS": "a month"}, "MESSAGE_LOG_RETENTION_DAYS"),
        ({"MESSAGE_LOG_RETENTION_DAYS": "0"}, "MESSAGE_LOG_RETENTION_DAYS"),
    ],
)
def test_bad_configuration_fails_fast_naming_the_variable(overrides, variable):
    result = run_django(overrides)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert variable in last_line, result.stderr


def test_secrets_can_come_from_files(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text(GOOD_SECRET + "\n")
    master_file = tmp_path / "master"
    master_file.write_text(GOOD_MASTER)
    result = run_django(
        {
            "SECRET_KEY": None,
            "SECRET_KEY_FILE": str(key_file),
            "FOUNDATION_MASTER_KEY": None,
            "FOUNDATION_MASTER_KEY_FILE": str(master_file),
        },
        "-c",
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.SECRET_KEY == 'k' * 20 + 'abcdefghijklmnopqrstuvwxyz0123456789', "
        "len(settings.FOUNDATION_MASTER_KEY))",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "32"]


def test_a_variable_and_its_file_together_are_refused(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text(GOOD_SECRET)
    result = run_django({"SECRET_KEY_FILE": str(key_file)})
    assert result.returncode != 0
    assert "SECRET_KEY or SECRET_KEY_FILE" in result.stderr


def test_debug_needs_no_secrets():
    result = run_django(
        {
            "DEBUG": "true",
            "SECRET_KEY": None,
            "FOUNDATION_MASTER_KEY": None,
            "FOUNDATION_SITE_SIGNING_KEY": None,
            "ALLOWED_HOSTS": None,
        }
    )
    assert result.returncode == 0, result.stderr


PRINT_SITE_KEY = (
    "import django; django.setup(); from foundation_core.signing import site_public_key; "
    "print(site_public_key())"
)


def test_the_site_public_key_comes_from_the_signing_key_or_its_file(tmp_path):
    key_file = tmp_path / "site_signing_key"
    key_file.write_text(GOOD_SIGNING + "\n")
    direct = run_django({}, "-c", PRINT_SITE_KEY)
    from_file = run_django(
        {"FOUNDATION_SITE_SIGNING_KEY": None, "FOUNDATION_SITE_SIGNING_KEY_FILE": str(key_file)},
        "-c",
        PRINT_SITE_KEY,
    )
    assert direct.returncode == from_file.returncode == 0, direct.stderr + from_file.stderr
    assert direct.stdout == from_file.stdout
    assert len(direct.stdout.strip()) == 44
    assert GOOD_SIGNING not in direct.stdout


def test_in_debug_without_a_signing_key_every_process_derives_the_same_one():
    development = {"DEBUG": "true", "FOUNDATION_SITE_SIGNING_KEY": None}
    one = run_django(development, "-c", PRINT_SITE_KEY)
    two = run_django(development, "-c", PRINT_SITE_KEY)
    other = run_django(development | {"SECRET_KEY": GOOD_SECRET[::-1]}, "-c", PRINT_SITE_KEY)
    assert one.returncode == two.returncode == other.returncode == 0, one.stderr
    assert one.stdout == two.stdout != other.stdout


def test_the_secret_key_value_never_appears_in_the_error(tmp_path):
    result = run_django({"SECRET_KEY": "short-but-secret-canary"})
    assert "short-but-secret-canary" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("REDIS_URL", "redis://:pw-canary@127.0.0.1:port/0"),
        ("REDIS_URL", "http://user:pw-canary@127.0.0.1:6379"),
        ("REDIS_URL", "redis://user:pw-canary@[::1/0"),
        ("AGENTS_REDIS_URL", "redis+cluster://agent:pw-canary@:7000"),
        ("VAULT_ADDR", "ftp://admin:pw-canary@vault:8200"),
        ("DATABASE_URL", "postgres://app:pw-canary@db:port/x"),
        ("DATABASE_URL", "mysqlx://app:pw-canary@db/x"),
    ],
)
def test_a_malformed_url_is_named_but_its_password_never_shown(variable, url):
    """Finding 8 of the review: a malformed URL at start-up was printed whole."""
    result = run_django({variable: url})
    assert result.returncode != 0
    assert variable in result.stderr.strip().splitlines()[-1], result.stderr
    assert "pw-canary" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:secret@host:6379/0", "redis://***@host:6379/0"),
        ("redis+cluster://agent-a:secret@host:7000", "redis+cluster://***@host:7000"),
        ("host:6379", "host:6379"),
        ("user:secret@host", "***@host"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://a:b@c@host/0", "redis://***@host/0"),
    ],
)
def test_urls_are_shown_without_their_user_info(url, shown):
    from foundation_client.connections import redacted_url

    assert redacted_url(url) == shown
