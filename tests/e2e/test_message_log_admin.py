"""The message log's filter boxes and search in Chromium: filters combine, search is exact."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from agents_app.models import Agent
from messaging_app.models import MessageLog

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_admin_narrows_the_log_with_the_filter_boxes(page, live_server):
    User.objects.create_superuser("ops", "o@example.com", "e2e-message-log-pass")
    Agent.objects.create(name="billing", token_hash="b" * 64)
    for n, (sender, kind) in enumerate(
        [("billing", "invoice"), ("billing", "quote"), ("pricing", "invoice")]
    ):
        MessageLog.objects.create(
            message_id=f"e2e-{n}", sender=sender, receiver="ledger", message_type=kind
        )

    page.goto("/admin/login/?next=/admin/messaging_app/messagelog/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "e2e-message-log-pass")
    page.click("input[type=submit]")
    page.wait_for_selector("#changelist")
    assert page.locator("datalist#filter-sender option[value=billing]").count() == 1

    page.fill("input[name=sender]", "billing")
    page.press("input[name=sender]", "Enter")
    page.wait_for_url(re.compile(r".*sender=billing"))
    page.fill("input[name=type]", "invoice")
    page.press("input[name=type]", "Enter")
    page.wait_for_url(re.compile(r".*type=invoice"))
    assert "sender=billing" in page.url  # the other box's value went along
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "e2e-0" in rows.first.inner_text()

    page.locator("details[data-filter-title=sender] a", has_text="Clear").click()
    page.wait_for_url(re.compile(r"^(?!.*sender=).*type=invoice"))
    assert page.locator("#result_list tbody tr").count() == 2

    page.fill("#searchbar", "e2e-2")
    page.press("#searchbar", "Enter")
    page.wait_for_url(re.compile(r".*q=e2e-2"))
    assert page.locator("#result_list tbody tr").count() == 1
    page.fill("#searchbar", "e2e")
    page.press("#searchbar", "Enter")
    page.wait_for_url(re.compile(r".*q=e2e(&|$)"))
    assert "0 message logs" in page.locator("p.paginator").inner_text()
