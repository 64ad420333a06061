"""The recorder writes every status once, even when a batch is delivered twice."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from django.conf import settings as django_settings

from foundation_client import ClientSettings, Envelope, Messaging, MessagingConfig
from foundation_client._envelope import EVENTS
from foundation_site.redis_client import get_redis
from messaging_app import services
from messaging_app.models import MessageLog, RecordedEvent

pytestmark = pytest.mark.django_db

FAST = MessagingConfig(max_attempts=2, backoff_base=0.01, backoff_max=0.02, block_ms=20)


@pytest.fixture(autouse=True)
def _fresh_events():
    """Each test records only its own events: the stream and the recorder group start empty."""
    get_redis().delete(EVENTS)
    yield
    get_redis().delete(EVENTS)


def agent(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def traffic(receiver: str) -> tuple[str, str]:
    """One message that succeeds, one that fails once then dies."""
    url = django_settings.REDIS_URL

    async def scenario() -> tuple[str, str]:
        async with Messaging(ClientSettings(agent_name=receiver, redis_url=url), config=FAST) as m:

            async def good(envelope: Envelope) -> None:
                return None

            async def bad(envelope: Envelope) -> None:
                raise ValueError("always")

            m.on("good", good)
            m.on("bad", bad)
            ok = await m.send(receiver, "good", {"n": 1}, correlation_id="conv-1")
            dead = await m.send(receiver, "bad", {"n": 2}, correlation_id="conv-1")
            for _ in range(40):
                await m.process_once(block_ms=0)
                await asyncio.sleep(0.005)
            return ok, dead

    return asyncio.run(scenario())


def statuses(message_id: str) -> list:
    return list(
        MessageLog.objects.filter(message_id=message_id)
        .order_by("created_at", "id")
        .values_list("status", flat=True)
    )


def test_the_recorder_writes_every_status_once():
    receiver = agent("rec")
    ok, dead = traffic(receiver)
    recorder = services.Recorder(consumer="test", block_ms=0)
    while recorder.step():
        pass
    assert statuses(ok) == ["sent", "delivered"]
    assert statuses(dead) == ["sent", "failed", "dead"]
    sent = MessageLog.objects.get(message_id=ok, status="sent")
    assert (sent.sender, sent.receiver, sent.message_type) == (receiver, receiver, "good")
    assert sent.payload == {"n": 1}
    assert sent.correlation_id == "conv-1"
    assert (
        "ValueError: always" in MessageLog.objects.get(message_id=dead, status="dead").error_message
    )


def test_a_batch_recorded_twice_adds_no_rows():
    receiver = agent("rec")
    traffic(receiver)
    entries = get_redis().xrange(EVENTS)
    assert services.record(entries) > 0
    before = MessageLog.objects.count()
    services.record(entries)
    assert MessageLog.objects.count() == before


def test_a_recorder_that_died_before_acknowledging_is_taken_over():
    receiver = agent("rec")
    ok, _ = traffic(receiver)
    redis = get_redis()
    dying = services.Recorder(consumer="dying", block_ms=0)
    # It reads a batch and dies before writing or acknowledging it.
    redis.xreadgroup(services.RECORDER_GROUP, "dying", {EVENTS: ">"}, count=1000)
    assert MessageLog.objects.count() == 0
    heir = services.Recorder(consumer="heir", block_ms=0, reclaim_after_ms=0)
    while heir.step():
        pass
    assert statuses(ok) == ["sent", "delivered"]
    assert redis.xpending(EVENTS, services.RECORDER_GROUP)["pending"] == 0
    del dying


def test_a_malformed_event_is_skipped_not_fatal():
    redis = get_redis()
    services.Recorder(consumer="x", block_ms=0)
    redis.xadd(EVENTS, {"status": "delivered", "batch": "{broken"})
    redis.xadd(EVENTS, {"status": "sent", "message_id": "m1", "at": "nonsense"})
    recorder = services.Recorder(consumer="x", block_ms=0)
    while recorder.step():
        pass
    assert list(MessageLog.objects.values_list("message_id", "status")) == [("m1", "sent")]


def test_the_command_records_and_exits_with_once(capsys):
    from django.core.management import call_command

    receiver = agent("rec")
    ok, _ = traffic(receiver)
    call_command("messaging_recorder", "--once", "--nice", "0")  # not the test process
    assert "recorded" in capsys.readouterr().out
    assert statuses(ok) == ["sent", "delivered"]


def test_the_recorder_keeps_the_events_stream_bounded():
    redis = get_redis()
    recorder = services.Recorder(consumer="trimmer", block_ms=0, events_maxlen=5, trim_every=0)
    for i in range(20):
        redis.xadd(EVENTS, {"status": "sent", "message_id": f"t{i}", "at": "1"})
    while recorder.step():
        pass
    assert redis.xlen(EVENTS) == 5
    assert MessageLog.objects.filter(message_id__startswith="t").count() == 20


def test_the_ledger_keeps_only_what_could_be_delivered_again():
    redis = get_redis()
    recorder = services.Recorder(
        consumer="pruner", block_ms=0, trim_every=1e9, ledger_keep_seconds=0
    )
    for i in range(3):
        redis.xadd(EVENTS, {"status": "sent", "message_id": f"p{i}", "at": "1"})
    while recorder.step():
        pass
    # A fourth entry is read by a recorder that dies before writing it: it stays pending.
    pending_id = redis.xadd(EVENTS, {"status": "sent", "message_id": "p3", "at": "1"})
    redis.xreadgroup(services.RECORDER_GROUP, "dying", {EVENTS: ">"}, count=10)
    assert RecordedEvent.objects.count() == 3
    # By default recent entries are kept anyway (a stalled recorder may still hold one).
    assert services.Recorder(consumer="cautious", block_ms=0).prune_ledger() == 0
    assert recorder.prune_ledger() == 3
    assert RecordedEvent.objects.count() == 0
    # The pending entry is recorded once, by whoever takes it over, even if offered twice.
    heir = services.Recorder(
        consumer="heir", block_ms=0, reclaim_after_ms=0, trim_every=1e9, ledger_keep_seconds=0
    )
    while heir.step():
        pass
    assert services.record(redis.xrange(EVENTS, pending_id, pending_id)) == 0
    assert list(RecordedEvent.objects.values_list("ms", "seq")) == [
        tuple(int(part) for part in pending_id.decode().split("-"))
    ]
    assert heir.prune_ledger() == 1
    assert MessageLog.objects.filter(message_id="p3").count() == 1


def test_an_entry_the_database_refuses_is_skipped_and_the_rest_recorded(caplog):
    redis = get_redis()
    recorder = services.Recorder(consumer="x", block_ms=0, trim_every=1e9)
    redis.xadd(EVENTS, {"status": "sent", "message_id": "good-1", "at": "1"})
    # PostgreSQL refuses a NUL character in text; SQLite takes it. Either way nothing stalls.
    redis.xadd(EVENTS, {"status": "failed", "message_id": "nul", "error": "a\x00b", "at": "1"})
    redis.xadd(EVENTS, {"status": "sent", "message_id": "good-2", "payload": '{"n": 2}'})
    # jsonb refuses \u0000; PostgreSQL's error quotes the row, which must not reach the log.
    redis.xadd(
        EVENTS,
        {"status": "replayed", "message_id": "nul-2", "payload": '"\\u0000canary-value"'},
    )
    with caplog.at_level(logging.WARNING, logger="foundation.messaging"):
        while recorder.step():
            pass
    assert "canary-value" not in caplog.text
    recorded = set(MessageLog.objects.values_list("message_id", flat=True))
    assert {"good-1", "good-2"} <= recorded
    assert MessageLog.objects.get(message_id="good-2").payload == {"n": 2}  # written once
    assert redis.xpending(EVENTS, services.RECORDER_GROUP)["pending"] == 0
    assert services.record(redis.xrange(EVENTS)) == 0  # the refused one is not tried again


def test_the_command_lowers_its_priority_unless_told_not_to(monkeypatch):
    from django.core.management import CommandError, call_command

    niced: list[int] = []
    monkeypatch.setattr("os.nice", niced.append)
    call_command("messaging_recorder", "--once")
    call_command("messaging_recorder", "--once", "--nice", "0")
    assert niced == [10]
    with pytest.raises(CommandError, match="0 or more"):
        call_command("messaging_recorder", "--once", "--nice", "-5")
    assert niced == [10]
