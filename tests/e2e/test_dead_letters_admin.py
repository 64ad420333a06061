"""Dead letters in Chromium: see one, replay it, and it is delivered."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import uuid

import django_rq
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from foundation_client import ClientSettings, Envelope, Messaging, MessagingConfig

pytestmark = pytest.mark.django_db(transaction=True)


def run_async(coro):
    """Playwright's sync API keeps an event loop running in this thread: use another."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def client(receiver: str, attempts: int) -> Messaging:
    return Messaging(
        ClientSettings(agent_name=receiver, redis_url=django_settings.REDIS_URL),
        config=MessagingConfig(max_attempts=attempts),
    )


def test_an_admin_replays_a_dead_letter(page, live_server, rq_burst):
    User.objects.create_superuser("ops", "o@example.com", "e2e-dead-letters-pass")
    receiver = f"e2e-{uuid.uuid4().hex[:8]}"
    django_rq.get_queue("default").empty()

    async def kill() -> str:
        async with client(receiver, 1) as m:

            async def bad(envelope: Envelope) -> None:
                raise RuntimeError("fails in the browser test")

            m.on("job", bad)
            message_id = await m.send(receiver, "job", {"order": 7})
            for _ in range(10):
                await m.process_once(block_ms=0)
            return message_id

    message_id = run_async(kill())

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

    got: list[Envelope] = []

    async def receive() -> None:
        async with client(receiver, 3) as m:

            async def good(envelope: Envelope) -> None:
                got.append(envelope)

            m.on("job", good)
            for _ in range(10):
                await m.process_once(block_ms=0)

    run_async(receive())
    assert [(e.id, e.payload) for e in got] == [(message_id, {"order": 7})]
    page.reload()
    assert page.locator("tr.dead-letter", has_text=message_id).count() == 0
