"""Dead letters replayed (one or many), and a time range replayed for one receiver."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from audit_app.models import AuditLog
from foundation_client import ClientSettings, Messaging
from foundation_client.protocol import AGENTS, dead_letters, inbox, requeue
from foundation_core.redis_client import get_wire
from messaging_app import services
from messaging_app.models import MessageLog

pytestmark = pytest.mark.django_db


def test_a_replayed_dead_letter_is_delivered_once_and_logged_as_replayed(
    admin_user, agent_messaging
):
    receiver = f"rp-{uuid.uuid4().hex[:8]}"
    message_id = agent_messaging.dead_letter(receiver, {"v": 1}, "broken")
    letters = services.dead_letters(receiver=receiver)
    assert [(d.message_id, d.reason) for d in letters] == [(message_id, "RuntimeError: broken")]

    report = services.replay_dead_letters([letters[0].entry_id], actor=admin_user)
    assert report.replayed == [letters[0].entry_id]
    assert services.dead_letters(receiver=receiver) == []
    got = agent_messaging.consume(receiver)
    assert [(e.id, e.attempt, e.payload) for e in got] == [(message_id, 1, {"v": 1})]
    assert agent_messaging.consume(receiver) == []  # once

    recorder = services.Recorder()
    while recorder.step():
        pass
    assert MessageLog.objects.filter(message_id=message_id, status="replayed").count() == 1
    row = AuditLog.objects.get(event_type="messaging.replay")
    assert (row.actor, row.success) == ("admin", True)


def test_replaying_an_unknown_or_foreign_entry_is_skipped_and_audited(admin_user):
    receiver = f"rp-{uuid.uuid4().hex[:8]}"
    raw = {"reason": "malformed entry", "raw": "{}"}
    foreign = f"{receiver}/{get_wire().xadd(dead_letters(receiver), raw).decode()}"
    unknown = ["0-1", f"{receiver}/0-1", "../x/0-1", f"{receiver}/1-1\n"]
    report = services.replay_dead_letters([*unknown, foreign], actor=admin_user)
    assert report.replayed == []
    assert report.skipped == [*unknown, foreign]
    assert AuditLog.objects.get(event_type="messaging.replay").success is False


@pytest.mark.postgres  # the replays audit from threads of their own: SQLite would lock
# Committed by those threads' own connections: flushed after the test, not left to the next.
@pytest.mark.django_db(transaction=True)
def test_two_replays_of_one_dead_letter_at_once_deliver_it_once(admin_user, agent_messaging):
    import threading

    receiver = f"rc-{uuid.uuid4().hex[:8]}"
    agent_messaging.dead_letter(receiver, {"v": 1}, "broken")
    entry = services.dead_letters(receiver=receiver)[0].entry_id
    start = threading.Barrier(4)
    reports = []

    def replay() -> None:
        from django.db import connection

        start.wait()
        try:
            reports.append(services.replay_dead_letters([entry], actor="test"))
        finally:
            connection.close()  # this thread's, back to the pool before the database goes

    threads = [threading.Thread(target=replay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(r.replayed) for r in reports) == [0, 0, 0, 1]
    assert len(agent_messaging.consume(receiver)) == 1


def test_a_time_range_is_replayed_for_one_receiver(admin_user, agent_messaging):
    receiver = f"rr-{uuid.uuid4().hex[:8]}"
    now = timezone.now()
    for i, minutes in enumerate((50, 30, 10)):
        MessageLog.objects.create(
            message_id=f"m{i}",
            sender="a",
            receiver=receiver,
            message_type="job",
            payload={"i": i},
            status="sent",
            created_at=now - timedelta(minutes=minutes),
        )
    MessageLog.objects.create(
        message_id="other",
        sender="a",
        receiver="someone-else",
        message_type="job",
        payload={},
        status="sent",
        created_at=now - timedelta(minutes=30),
    )
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    MessageLog.objects.filter(message_id="m1").update(traceparent=trace)
    count = services.replay_range(
        receiver, now - timedelta(minutes=40), now - timedelta(minutes=5), actor=admin_user
    )
    assert count == 2
    got = agent_messaging.consume(receiver)
    assert sorted((e.id, e.traceparent) for e in got) == [("m1", trace), ("m2", None)]
    assert AuditLog.objects.get(action="replay_range").metadata["messages"] == 2
    with pytest.raises(ValueError, match="after its start"):
        services.replay_range(receiver, now, now, actor=admin_user)


def test_a_logged_payload_the_wire_cannot_carry_is_skipped_and_the_rest_replayed(
    admin_user, agent_messaging
):
    receiver = f"rr-{uuid.uuid4().hex[:8]}"
    now = timezone.now()
    for message_id, payload in (("huge", {"n": 2**70}), ("fine", {"n": 1})):
        MessageLog.objects.create(
            message_id=message_id,
            sender="a",
            receiver=receiver,
            message_type="job",
            payload=payload,
            status="sent",
            created_at=now - timedelta(minutes=1),
        )
    count = services.replay_range(receiver, now - timedelta(minutes=2), now, actor=admin_user)
    assert count == 1
    assert [e.id for e in agent_messaging.consume(receiver)] == ["fine"]
    audit = AuditLog.objects.get(action="replay_range")
    assert (audit.success, audit.metadata["skipped"]) == (False, ["huge"])
    assert "not replayable" in audit.error_message


def test_the_replay_jobs_take_ids_and_a_user_id(admin_user, agent_messaging):
    from messaging_app import jobs

    receiver = f"rj-{uuid.uuid4().hex[:8]}"
    agent_messaging.dead_letter(receiver, {"v": 1}, "broken")
    entry = services.dead_letters(receiver=receiver)[0].entry_id
    assert jobs.replay_dead_letters([entry], admin_user.pk) == {"replayed": [entry], "skipped": []}
    assert get_wire().xlen(requeue(receiver)) == 1


def test_stream_health_reports_length_pending_and_consumers():
    receiver = f"sh-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        settings = ClientSettings(agent_name=receiver, redis_url=django_settings.AGENTS_REDIS_URL)
        async with Messaging(settings) as m:
            await m.send(receiver, "job", {})
            stream = inbox(receiver, receiver)
            await m._redis.xreadgroup("agents", "worker-1", {stream: ">"}, count=1)

    get_wire().sadd(AGENTS, receiver)
    asyncio.run(scenario())
    health = {h.stream: h for h in services.stream_health()}
    mine = health[inbox(receiver, receiver)]
    assert mine.length == 1
    group = mine.groups[0]
    assert (group.name, group.pending) == ("agents", 1)
    assert group.oldest_pending_seconds is not None
    assert ("worker-1", 1) in [(c[0], c[1]) for c in group.consumers]
