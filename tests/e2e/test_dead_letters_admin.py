"""Dead letters in Chromium: see one, replay it, and it is delivered."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_admin_replays_a_dead_letter(page, live_server, rq_burst, queue, agent_messaging):
    User.objects.create_superuser("ops", "o@example.com", "e2e-dead-letters-pass")
    receiver = f"e2e-{uuid.uuid4().hex[:8]}"
    message_id = agent_messaging.dead_letter(receiver, {"order": 7}, "fails in the browser test")

    page.goto("/admin/login/?next=/admin/messaging_app/messagelog/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "e2e-dead-letters-pass")
    page.click("input[type=submit]")
    page.click("text=Dead letters")
    page.wait_for_url(re.compile(r".*/dead-letters/"))
    page.fill("input[name=receiver]", receiver)
    page.click("#dead-filter input[type=submit]")
    row = page.locator("tr.dead-letter", has_text=message_id)
    assert "fails in the browser test" in row.inner_text()
    row.locator("input[type=checkbox]").check()
    page.click("text=Replay selected")
    page.wait_for_selector("text=Replay of 1 dead letter(s) queued.")

    rq_burst()

    got = agent_messaging.consume(receiver)
    assert [(e.id, e.payload) for e in got] == [(message_id, {"order": 7})]
    page.reload()
    assert page.locator("tr.dead-letter", has_text=message_id).count() == 0
