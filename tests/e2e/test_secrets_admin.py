"""Secrets in the admin, in real Chromium: create, rotate, and the value is never shown."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth.models import User

from secrets_app import services
from secrets_app.models import SecretMetadata

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "e2e-secrets-admin-pass"


@pytest.fixture
def logged_in(page, db):
    User.objects.create_superuser("sec_admin", "s@example.com", PASSWORD)
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "sec_admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/$"))
    return page


def test_create_rotate_and_roll_back_without_ever_seeing_the_value(logged_in, vault_prefix):
    page = logged_in
    canary = f"browser-canary-{uuid.uuid4().hex}"
    seen: list[str] = []

    def remember() -> None:
        seen.append(page.content())

    page.click("#content-main tr.model-secretmetadata a.addlink")
    remember()
    page.fill("#id_secret_name", "webhook_signing_key")
    page.fill("#id_value", canary)
    assert page.get_attribute("#id_value", "type") == "password"
    page.select_option("#id_storage_backend", "vault")
    page.fill("#id_provider", "internal")  # the foundation rotates its own
    page.click("input[type=submit]")

    page.wait_for_selector("text=Secret webhook_signing_key created (version 1).")
    remember()
    secret = SecretMetadata.objects.get(secret_name="webhook_signing_key")
    assert services.read_value(secret) == canary

    page.click("button.rotate-now")
    page.wait_for_selector("text=Rotated: version 2 is current.")
    remember()
    secret.refresh_from_db()
    assert secret.current_version == 2
    assert services.read_value(secret) != canary

    page.click("text=Versions")
    page.wait_for_selector("#versions")
    remember()
    rows = page.locator("#versions tbody tr")
    assert rows.count() == 2
    page.click("text=Roll back to version 1")
    page.wait_for_selector("text=Version 1 is current again, as version 3.")
    remember()
    secret.refresh_from_db()
    assert services.read_value(secret) == canary

    page.goto("/admin/secrets_app/secretmetadata/")
    remember()
    assert "webhook_signing_key" in page.content()
    page.goto(f"/admin/secrets_app/secretmetadata/{secret.pk}/set-value/")
    remember()
    assert page.input_value("#id_value") == ""
    assert not any(canary in html for html in seen)
