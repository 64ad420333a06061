"""A deployment of protocol 1 (keys under foundation:msg:, one shared password) moves to
protocol 2 with nothing lost: every message is then handled or still dead-lettered."""

from __future__ import annotations

import json
import time
import uuid
from io import StringIO

import pytest
from django.core.management import call_command

from audit_app.models import AuditLog
from foundation_core.redis_client import get_wire
from messaging_app import services
from messaging_app.models import MessageLog

pytestmark = pytest.mark.django_db

OLD = "foundation:msg:"


def old_envelope(sender: str, receiver: str, n: int, *, attempt: int = 1) -> tuple[str, bytes]:
    """An inbox entry exactly as protocol 1's client wrote it (no traceparent)."""
    message_id = uuid.uuid4().hex
    text = json.dumps(
        {
            "id": message_id,
            "sender": sender,
            "receiver": receiver,
            "type": "job",
            "attempt": attempt,
            "correlation_id": None,
            "created_at": time.time(),
            "reply_to": None,
            "payload": {"n": n},
        }
    ).encode()
    return message_id, text


@pytest.fixture
def old_deployment():
    """Agent b has: one message handled, one taken by a consumer that died (pending), two never
    delivered, a foreign entry, a retry waiting in its delayed set, a dead letter; the events
    stream has one entry the old recorder wrote and one it had not."""
    wire = get_wire()
    a, b = f"olda-{uuid.uuid4().hex[:6]}", f"oldb-{uuid.uuid4().hex[:6]}"
    inbox = f"{OLD}{b}"
    for key in wire.scan_iter(match=f"{OLD}*"):  # this test's deployment alone
        wire.delete(key)
    wire.xgroup_create(inbox, "agents", id="0", mkstream=True)
    ids = {}
    for label in ("handled", "pending", "new-1", "new-2"):
        ids[label], text = old_envelope(a, b, len(ids))
        wire.xadd(inbox, {"e": text})
    handled = wire.xreadgroup("agents", "c1", {inbox: ">"}, count=1)[0][1][0][0]
    wire.xack(inbox, "agents", handled)
    wire.xreadgroup("agents", "died", {inbox: ">"}, count=1)  # "pending": never acknowledged
    wire.xadd(inbox, {"foreign": "producer"})
    ids["retry"], retry = old_envelope(a, b, 9, attempt=2)
    wire.zadd(f"{OLD}{b}:delayed", {retry: time.time() - 1})
    ids["dead"] = uuid.uuid4().hex
    wire.xadd(
        f"{OLD}dead",
        {
            "reason": "RuntimeError: down",
            "stream": inbox,
            "entry_id": "1-0",
            "dead_at": repr(time.time()),
            "id": ids["dead"],
            "sender": a,
            "receiver": b,
            "type": "job",
            "payload": '{"n": 99}',
            "attempt": "5",
            "correlation_id": "",
            "created_at": repr(time.time()),
            "reply_to": "",
        },
    )
    wire.xgroup_create(f"{OLD}events", "recorder", id="0", mkstream=True)
    head = {"id": ids["handled"], "sender": a, "receiver": b, "type": "job", "attempt": 1}
    wire.xadd(f"{OLD}events", {"status": "sent", "at": "1", "batch": json.dumps([head])})
    wire.xreadgroup("recorder", "old", {f"{OLD}events": ">"}, count=1)
    wire.xack(f"{OLD}events", "recorder", wire.xrange(f"{OLD}events")[0][0])
    head = {**head, "id": ids["pending"]}
    wire.xadd(f"{OLD}events", {"status": "sent", "at": "2", "batch": json.dumps([head])})
    wire.sadd(f"{OLD}agents", b)
    return a, b, ids


def test_every_message_is_handled_or_still_dead_lettered_after_the_upgrade(
    old_deployment, admin_user, agent_messaging
):
    _, b, ids = old_deployment
    out = StringIO()
    call_command("upgrade_wire", stdout=out, stderr=StringIO())
    assert "moved: 4 inbox entries, 1 delayed retries, 1 dead letters, 1 unrecorded events" in (
        out.getvalue()
    )
    handled = {e.id: e for e in agent_messaging.consume(b)}
    assert set(handled) == {ids["pending"], ids["new-1"], ids["new-2"], ids["retry"]}
    assert handled[ids["retry"]].attempt == 2
    letters = services.dead_letters(receiver=b)
    by_id = {letter.message_id: letter for letter in letters}
    assert by_id[ids["dead"]].reason == "RuntimeError: down"
    assert by_id[ids["dead"]].replayable
    assert [letter.reason for letter in letters if not letter.replayable] == [
        "malformed entry: not an envelope of protocol 1"
    ]
    services.replay_dead_letters([by_id[ids["dead"]].entry_id], actor=admin_user)
    assert [e.id for e in agent_messaging.consume(b)] == [ids["dead"]]
    assert MessageLog.objects.get(message_id=ids["pending"]).status == "sent"
    assert not MessageLog.objects.filter(message_id=ids["handled"]).exists()  # recorded before
    wire = get_wire()
    assert not wire.exists(f"{OLD}{b}", f"{OLD}dead", f"{OLD}events", f"{OLD}agents")
    assert wire.zcard(f"{OLD}{b}:delayed") == 0
    assert AuditLog.objects.filter(event_type="messaging.upgrade").count() == 1


def test_the_upgrade_can_be_counted_first_and_run_again(old_deployment):
    out = StringIO()
    call_command("upgrade_wire", "--dry-run", stdout=out)
    assert "would move: 4 inbox entries, 1 delayed retries, 1 dead letters, 1 unrecorded" in (
        out.getvalue()
    )
    call_command("upgrade_wire", stdout=StringIO(), stderr=StringIO())
    again = StringIO()
    call_command("upgrade_wire", stdout=again)
    assert "moved: 0 inbox entries, 0 delayed retries, 0 dead letters, 0 unrecorded" in (
        again.getvalue()
    )
