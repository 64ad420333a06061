"""Logging in to the admin, and a brute-force attempt showing on the Suspicious-activity page."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from audit_app.models import AuditLog

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "e2e-correct-horse-battery"


@pytest.fixture
def admin_account(db) -> User:
    return User.objects.create_superuser("root_admin", "root@example.com", PASSWORD)


def log_in(page, username: str, password: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def test_an_admin_logs_in_and_sees_the_subsystems(page, admin_account):
    log_in(page, "root_admin", PASSWORD)
    page.wait_for_url(re.compile(r".*/admin/$"))
    body = page.inner_text("body").upper()
    for section in ("Audit", "Secrets", "Messaging", "Telemetry", "Configuration"):
        assert section.upper() in body
    row = AuditLog.objects.get(action="login", success=True)
    assert row.actor == "root_admin"
    assert row.ip_address == "127.0.0.1"
    assert "Chrome" in (row.user_agent or "")


def test_five_failed_log_ins_put_the_user_name_on_the_suspicious_page(page, admin_account):
    for attempt in range(5):
        log_in(page, "mallory", f"guess-{attempt}")
        assert page.locator(".errornote").is_visible()
    log_in(page, "root_admin", PASSWORD)
    page.wait_for_url(re.compile(r".*/admin/$"))

    page.click("text=Suspicious activity")
    page.wait_for_url(re.compile(r".*/admin/audit_app/suspiciousactivity/"))
    row = page.locator("#result_list tbody tr", has_text="mallory")
    assert row.count() == 1
    cells = row.locator("td, th").all_inner_texts()
    assert "5" in [c.strip() for c in cells]

    row.locator("a", has_text="failures of mallory").click()
    page.wait_for_url(re.compile(r".*/admin/audit_app/auditlog/\?.*actor=mallory"))
    assert page.locator("#result_list tbody tr").count() == 5
