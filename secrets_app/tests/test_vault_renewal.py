"""Finding 10 of the review: the site's Vault token was never renewed, so the first request after
it expired failed. It is renewed once a third of its life is left, before any request fails."""

from __future__ import annotations

import logging
import time

import hvac
import pytest

from secrets_app import services
from secrets_app.backends import vault

pytestmark = pytest.mark.django_db


def short_token(settings, **options: object) -> str:
    root = hvac.Client(url=settings.VAULT_ADDR, token=settings.VAULT_TOKEN)
    return str(root.auth.token.create(policies=["root"], **options)["auth"]["client_token"])


def test_a_short_lived_token_is_renewed_before_it_expires(settings, admin_user, vault_prefix):
    secret = services.create_secret("renewed", "still-here", actor=admin_user, backend="vault")
    token = short_token(settings, ttl="4s", renewable=True, explicit_max_ttl="120s")
    settings.VAULT_TOKEN = token
    vault.reset_client()
    # Reads 3 s apart for 9 s, over twice the token's life: each finds under a third left.
    for _ in range(4):
        assert services.read_value(secret) == "still-here"
        time.sleep(3)
    assert services.read_value(secret) == "still-here"
    left = hvac.Client(url=settings.VAULT_ADDR, token=token).auth.token.lookup_self()["data"]
    assert left["ttl"] > 0


def test_a_token_that_cannot_be_renewed_is_said_to_expire(
    settings, admin_user, vault_prefix, caplog
):
    secret = services.create_secret("not-renewed", "v", actor=admin_user, backend="vault")
    settings.VAULT_TOKEN = short_token(settings, ttl="3s", renewable=False)
    vault.reset_client()
    assert services.read_value(secret) == "v"
    time.sleep(2.2)
    with caplog.at_level(logging.WARNING, logger="foundation.secrets.vault"):
        assert services.read_value(secret) == "v"
    assert "cannot be renewed: give the site a new VAULT_TOKEN" in caplog.text
