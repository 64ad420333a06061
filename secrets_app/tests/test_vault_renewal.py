"""Finding 10 of the review: the site's Vault token was never renewed, so the first request after
it expired failed. It is renewed once a third of its life is left, before any request fails.

Lifetimes run on the backend's clock (``vault.clock``), which these tests move forward instead
of waiting: Vault's own clock stays well inside every token's real TTL, so nothing can expire
under a slow machine, and the site must still decide to renew at the right point."""

from __future__ import annotations

import logging

import hvac
import pytest

from secrets_app import services
from secrets_app.backends import vault

pytestmark = pytest.mark.django_db


def short_token(settings, **options: object) -> str:
    root = hvac.Client(url=settings.VAULT_ADDR, token=settings.VAULT_TOKEN)
    return str(root.auth.token.create(policies=["root"], **options)["auth"]["client_token"])


@pytest.fixture
def clock(monkeypatch):
    """The backend's clock, moved by hand: ``clock.now += seconds``."""

    class Clock:
        now = 1000.0

        def __call__(self) -> float:
            return self.now

    fake = Clock()
    monkeypatch.setattr(vault, "clock", fake)
    return fake


def renewals(token: str, settings) -> str | None:
    data = hvac.Client(url=settings.VAULT_ADDR, token=token).auth.token.lookup_self()["data"]
    return data.get("last_renewal_time")


def test_a_token_is_renewed_once_a_third_of_its_life_is_left(
    settings, admin_user, vault_prefix, clock, caplog
):
    secret = services.create_secret("renewed", "still-here", actor=admin_user, backend="vault")
    token = short_token(settings, ttl="600s", renewable=True, explicit_max_ttl="3600s")
    settings.VAULT_TOKEN = token
    vault.reset_client()
    assert services.read_value(secret) == "still-here"
    clock.now += 390  # 210 s of 600 left: more than a third, not renewed
    assert services.read_value(secret) == "still-here"
    assert renewals(token, settings) is None
    clock.now += 20  # 190 s left: under a third
    with caplog.at_level(logging.INFO, logger="foundation.secrets.vault"):
        assert services.read_value(secret) == "still-here"
    assert "renewed the vault token for 600s" in caplog.text
    assert renewals(token, settings) is not None


def test_a_token_that_cannot_be_renewed_is_said_to_expire(
    settings, admin_user, vault_prefix, clock, caplog
):
    secret = services.create_secret("not-renewed", "v", actor=admin_user, backend="vault")
    settings.VAULT_TOKEN = short_token(settings, ttl="600s", renewable=False)
    vault.reset_client()
    assert services.read_value(secret) == "v"
    clock.now += 450
    with caplog.at_level(logging.WARNING, logger="foundation.secrets.vault"):
        assert services.read_value(secret) == "v"
    assert "cannot be renewed: give the site a new VAULT_TOKEN" in caplog.text
