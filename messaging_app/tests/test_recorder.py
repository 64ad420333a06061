"""The recorder writes every status once, from streams only their author can write, and loses
nothing when it or its database goes away."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid

import pytest
from django.conf import settings as django_settings
from django.db import OperationalError, connection

from foundation_client import ClientSettings, Envelope, Messaging, MessagingConfig
from foundation_client.protocol import AGENTS, events, inbox, status_event
from foundation_core.redis_client import get_wire
from messaging_app import services
from messaging_app.models import MessageLog, RecorderCursor

pytestmark = pytest.mark.django_db

FAST = MessagingConfig(
    max_attempts=2, backoff_base=0.01, backoff_max=0.02, block_ms=20, refresh_every=0.05
)


@pytest.fixture(autouse=True)
def _only_this_tests_agents():
    """The recorder reads every registered agent's streams: each test registers its own."""
    get_wire().delete(AGENTS)
    yield
    get_wire().delete(AGENTS)


def agent(prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    get_wire().sadd(AGENTS, name)
    return name


def traffic(receiver: str) -> tuple[str, str]:
    """One message that succeeds, one that fails once then dies."""
    url = django_settings.AGENTS_REDIS_URL

    async def scenario() -> tuple[str, str]:
        async with Messaging(ClientSettings(agent_name=receiver, redis_url=url), config=FAST) as m:
            settled: set[str] = set()  # each is settled in the round that handles it

            async def good(envelope: Envelope) -> None:
                settled.add(envelope.id)  # acknowledged once this returns

            async def bad(envelope: Envelope) -> None:
                if envelope.attempt == FAST.max_attempts:
                    settled.add(envelope.id)  # dead-lettered once this raises
                raise ValueError("always")

            m.on("good", good)
            m.on("bad", bad)
            ok = await m.send(receiver, "good", {"n": 1}, correlation_id="conv-1")
            dead = await m.send(receiver, "bad", {"n": 2}, correlation_id="conv-1")
            deadline = time.monotonic() + 10  # only for a test that would otherwise hang
            while settled != {ok, dead}:
                assert time.monotonic() < deadline, "the two messages did not settle"
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


def drain(recorder: services.Recorder) -> None:
    while recorder.step():
        pass


def test_the_recorder_writes_every_status_once():
    receiver = agent("rec")
    ok, dead = traffic(receiver)
    recorder = services.Recorder()
    drain(recorder)
    drain(services.Recorder())  # a second recorder, or the same again, adds nothing
    assert statuses(ok) == ["sent", "delivered"]
    assert statuses(dead) == ["sent", "failed", "dead"]
    sent = MessageLog.objects.get(message_id=ok, status="sent")
    assert (sent.sender, sent.receiver, sent.message_type) == (receiver, receiver, "good")
    assert sent.payload == {"n": 1}
    assert sent.correlation_id == "conv-1"
    assert (
        "ValueError: always" in MessageLog.objects.get(message_id=dead, status="dead").error_message
    )


def test_a_round_that_fails_before_committing_is_read_again_and_recorded_once(monkeypatch):
    receiver = agent("rec")
    ok, _ = traffic(receiver)
    recorder = services.Recorder()
    real = RecorderCursor.objects.bulk_update
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(*args, **kwargs)

    monkeypatch.setattr(RecorderCursor.objects, "bulk_update", flaky)
    with pytest.raises(OperationalError):
        recorder.step()
    assert MessageLog.objects.count() == 0  # rolled back, cursors included
    drain(recorder)
    assert statuses(ok) == ["sent", "delivered"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_recorder_whose_database_goes_away_for_seconds_loses_no_row():
    """The database refuses every connection for two seconds, and the recorder's own connection
    is cut, while messages keep coming; afterwards every row is there, once."""
    import psycopg

    receiver = agent("gone")
    ids = [traffic(receiver)[0]]
    database = connection.settings_dict["NAME"]
    params = connection.get_connection_params()
    params = {k: v for k, v in params.items() if k in ("host", "port", "user", "password")}
    admin = psycopg.connect(dbname="postgres", autocommit=True, **params)
    recorder = services.Recorder(idle_sleep=0.01, idle_sleep_max=0.05)
    stop = threading.Event()

    def run() -> None:
        try:
            recorder.run_until(stop.is_set)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        time.sleep(0.3)
        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )
        ids.append(traffic(receiver)[0])  # sent while the database is away
        time.sleep(2)
        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
        ids.append(traffic(receiver)[0])
        deadline = time.monotonic() + 30
        while recorded(ids) < 6:
            assert time.monotonic() < deadline, "the recorder did not catch up"
            time.sleep(0.1)
    finally:
        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
        stop.set()
        thread.join(30)
        admin.close()
    for message_id in ids:
        assert statuses(message_id) == ["sent", "delivered"]


def recorded(ids: list[str]) -> int:
    """Rows of these messages, read by this thread, whose pooled connections were cut too."""
    try:
        return MessageLog.objects.filter(message_id__in=ids).count()
    except OperationalError:
        connection.close()
        return 0


def test_what_an_agent_says_of_others_is_not_believed():
    """An agent writes events only in its own stream, and they speak of its own inbox: an event
    naming another receiver is recorded as the writer's. An inbox entry whose envelope claims
    another sender is recorded under the sender its stream proves."""
    liar, victim, third = agent("liar"), agent("victim"), agent("third")
    wire = get_wire()
    head = Envelope(sender=third, receiver=victim, type="t", payload=None, id="fake-1").head()
    wire.xadd(events(liar), status_event("delivered", [head]))
    wire.xadd(events(liar), status_event("sent", [head]))  # no agent reports a send
    forged = Envelope(sender=third, receiver=victim, type="t", payload=1, id="fake-2")
    wire.xadd(inbox(victim, liar), forged.to_entry())
    drain(services.Recorder())
    delivered = MessageLog.objects.get(message_id="fake-1")
    assert (delivered.status, delivered.receiver) == ("delivered", liar)
    sent = MessageLog.objects.get(message_id="fake-2")
    assert (sent.status, sent.sender, sent.receiver) == ("sent", liar, victim)
    assert sent.error_message == f"forged sender: the envelope claimed {third!r}"


def test_times_and_ids_a_hostile_agent_chooses_stop_nothing(caplog):
    """An event dated in the year 10^12 or NaN, an entry id in the year 10000, a sequence
    number past 2^64 - 2: the recorder records the rest, keeps trimming, and logs."""
    liar, victim = agent("liar"), agent("victim")
    wire = get_wire()
    good = Envelope(sender=liar, receiver=liar, type="t", payload=None, id="good-1").head()
    wire.xadd(events(liar), {"status": "delivered", "at": "1e20", "batch": "[]"})
    wire.xadd(events(liar), {"status": "delivered", "at": "nan", "batch": "[]"})
    wire.xadd(events(liar), status_event("delivered", [good]))
    far = Envelope(sender=liar, receiver=victim, type="t", payload=1, id="far-1")
    wire.xadd(inbox(victim, liar), far.to_entry(), id="253402300800000-0")
    huge = Envelope(sender=liar, receiver=liar, type="t", payload=2, id="huge-1")
    wire.xgroup_create(inbox(liar, liar), "agents", id="0", mkstream=True)
    wire.xadd(inbox(liar, liar), huge.to_entry(), id="5-18446744073709551614")
    wire.xreadgroup("agents", "c", {inbox(liar, liar): ">"})
    recorder = services.Recorder(trim_every=0, inbox_maxlen=1)
    with caplog.at_level(logging.WARNING, logger="foundation.messaging.recorder"):
        drain(recorder)
        assert recorder.trim() >= 0  # the huge id breaks no trim
    assert set(MessageLog.objects.values_list("message_id", "status")) == {
        ("good-1", "delivered"),
        ("far-1", "sent"),
        ("huge-1", "sent"),
    }
    far_row = MessageLog.objects.get(message_id="far-1")
    assert far_row.created_at.year < 3000  # never later than when it was recorded
    assert "out of range" in caplog.text
    assert "could not trim" not in caplog.text


def test_a_malformed_entry_is_skipped_not_fatal():
    receiver = agent("bad")
    wire = get_wire()
    wire.xadd(events(receiver), {"status": "delivered", "at": "1", "batch": "{broken"})
    wire.xadd(events(receiver), {"status": "delivered", "at": "nonsense", "batch": "[]"})
    wire.xadd(inbox(receiver, receiver), {"foreign": "producer"})
    good = Envelope(sender=receiver, receiver=receiver, type="t", payload=None, id="m1").head()
    wire.xadd(events(receiver), status_event("delivered", [good]))
    drain(services.Recorder())
    assert set(MessageLog.objects.values_list("message_id", "status")) == {
        ("m1", "delivered"),
        (None, "sent"),
    }
    assert MessageLog.objects.get(status="sent").error_message.startswith("malformed:")


def test_the_command_records_and_exits_with_once(capsys):
    from django.core.management import call_command

    receiver = agent("rec")
    ok, _ = traffic(receiver)
    call_command("messaging_recorder", "--once", "--nice", "0")  # not the test process
    assert "recorded" in capsys.readouterr().out
    assert statuses(ok) == ["sent", "delivered"]


def test_the_recorder_trims_what_it_recorded_and_never_what_is_still_needed():
    receiver = agent("trim")
    wire = get_wire()
    stream = inbox(receiver, receiver)
    wire.xgroup_create(stream, "agents", id="0", mkstream=True)
    for i in range(20):
        wire.xadd(stream, Envelope(receiver, receiver, "t", i, id=f"t{i}").to_entry())
    wire.xadd(events(receiver), status_event("delivered", [{"id": "e1"}]))
    # The receiver has taken 12 and acknowledged the first 10: 2 pending, 8 never delivered.
    taken = wire.xreadgroup("agents", "c", {stream: ">"}, count=12)[0][1]
    wire.xack(stream, "agents", *[entry_id for entry_id, _ in taken[:10]])
    recorder = services.Recorder(inbox_maxlen=5, trim_every=0)
    drain(recorder)
    assert wire.xlen(stream) == 10  # from the oldest pending entry on
    assert wire.xlen(events(receiver)) == 1  # up to the cursor, which is kept
    assert MessageLog.objects.filter(message_id__startswith="t").count() == 20


def test_an_entry_the_database_refuses_is_skipped_and_the_rest_recorded(caplog):
    receiver = agent("nul")
    wire = get_wire()
    wire.xadd(events(receiver), status_event("delivered", [{"id": "good-1"}]))
    # PostgreSQL refuses a NUL character in text; SQLite takes it. Either way nothing stalls.
    wire.xadd(events(receiver), status_event("failed", [{"id": "nul"}], error="a\x00b"))
    wire.xadd(
        inbox(receiver, receiver),
        Envelope(receiver, receiver, "t", {"n": 2}, id="good-2").to_entry(),
    )
    # jsonb refuses \u0000; PostgreSQL's error quotes the row, which must not reach the log.
    canary = Envelope(receiver, receiver, "t", "\u0000canary-value", id="nul-2")
    wire.xadd(inbox(receiver, receiver), canary.to_entry())
    recorder = services.Recorder()
    with caplog.at_level(logging.WARNING, logger="foundation.messaging"):
        drain(recorder)
    assert "canary-value" not in caplog.text
    recorded = set(MessageLog.objects.values_list("message_id", flat=True))
    assert {"good-1", "good-2"} <= recorded
    assert MessageLog.objects.get(message_id="good-2").payload == {"n": 2}  # written once
    before = MessageLog.objects.count()
    drain(recorder)
    assert MessageLog.objects.count() == before  # the refused one is not tried again


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


def test_a_round_reads_a_bounded_number_of_events_entries():
    """An events entry stands for a consumer's whole batch: a round reads ``events_batch`` of
    them, so its rows (and its transaction) stay bounded."""
    receiver = agent("bound")
    wire = get_wire()
    for n in range(25):
        head = Envelope(receiver, receiver, "t", None, id=f"b{n}").head()
        wire.xadd(events(receiver), status_event("delivered", [head, {**head, "id": f"c{n}"}]))
    recorder = services.Recorder(events_batch=10)
    assert recorder.step() == 10
    assert MessageLog.objects.count() == 20
    drain(recorder)
    assert MessageLog.objects.count() == 50


def test_odd_values_in_an_event_are_made_to_fit_their_columns():
    """Whatever an agent writes in its events, a row is made: text cut to its column, other
    types as text, empty text and impossible attempts as no value."""
    receiver = agent("odd")
    item = {
        "id": 12345,
        "sender": "",
        "receiver": "someone-else",
        "type": "t" * 80,
        "attempt": 2**40,
        "correlation_id": "c" * 150,
        "traceparent": ["not", "text"],
        "payload": {"kept": True},
    }
    get_wire().xadd(events(receiver), status_event("failed", [item], error="e" * 5000))
    drain(services.Recorder())
    row = MessageLog.objects.get()
    assert row.message_id == "12345"
    assert row.sender is None
    assert row.receiver == receiver  # the stream's, not what the item says
    assert row.message_type == "t" * 50
    assert row.attempt is None
    assert row.correlation_id == "c" * 100
    assert row.traceparent == "['not', 'text']"
    assert row.payload == {"kept": True}
    assert row.status == "failed"
