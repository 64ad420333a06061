"""Messaging pages in the admin: access, the message log's list (filters, search, count, the
queries it runs), conversation, dead letters and replay, streams."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import django_rq
import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from agents_app.models import Agent
from audit_app.models import AuditLog
from foundation_core.admin_scale import UncountedPaginator
from messaging_app import admin as messaging_admin
from messaging_app import services
from messaging_app.models import MessageLog

pytestmark = pytest.mark.django_db

LIST = reverse("admin:messaging_app_messagelog_changelist")
DEAD = reverse("admin:messaging_app_messagelog_dead_letters")
STREAMS = reverse("admin:messaging_app_messagelog_streams")
RANGE = reverse("admin:messaging_app_messagelog_replay_range")


def conversation(correlation_id: str) -> str:
    return reverse("admin:messaging_app_messagelog_conversation", args=[correlation_id])


def log(**fields) -> MessageLog:
    values = {
        "message_id": uuid.uuid4().hex,
        "sender": "alpha",
        "receiver": "beta",
        "message_type": "task",
        "status": "sent",
    }
    return MessageLog.objects.create(**(values | fields))


def listed(client, **params) -> set[str]:
    """The message ids the list shows for these query parameters."""
    response = client.get(LIST, params)
    assert response.status_code == 200
    return {row.message_id for row in response.context["cl"].result_list}


# --- the list -----------------------------------------------------------------------------------
def test_the_list_is_newest_first(admin_client):
    now = timezone.now()
    old = log(created_at=now - timedelta(hours=1))
    new = log(created_at=now)
    rows = list(admin_client.get(LIST).context["cl"].result_list)
    assert [r.pk for r in rows] == [new.pk, old.pk]


def test_search_matches_a_message_id_or_correlation_id_exactly(admin_client):
    target = log(message_id="3f2a9c0e11d04b7b", correlation_id="conv-77")
    other = log(message_id="3f2a9c0e11d04b7bff", correlation_id="conv-777")
    assert listed(admin_client, q="3f2a9c0e11d04b7b") == {target.message_id}
    assert listed(admin_client, q="conv-77") == {target.message_id}
    assert listed(admin_client, q=" conv-777 ") == {other.message_id}
    assert listed(admin_client, q="3f2a9c") == set()  # no substrings: they cannot use an index
    assert listed(admin_client, q="3F2A9C0E11D04B7B") == set()  # ids are exact, case included


def test_the_filters_narrow_the_list_exactly(admin_client):
    now = timezone.now()
    a = log(sender="alpha", receiver="beta", message_type="task", status="sent")
    b = log(sender="alphabet", receiver="beta", message_type="task.result", status="dead")
    c = log(sender="gamma", receiver="alpha", message_type="task", status="failed")
    old = log(sender="alpha", created_at=now - timedelta(days=3))
    assert listed(admin_client, sender="alpha") == {a.message_id, old.message_id}
    assert listed(admin_client, receiver="alpha") == {c.message_id}
    assert listed(admin_client, type="task") == {a.message_id, c.message_id, old.message_id}
    assert listed(admin_client, status__exact="dead") == {b.message_id}
    assert listed(admin_client, sender="alph") == set()
    day_ago = (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    assert listed(admin_client, before=day_ago) == {old.message_id}
    assert listed(admin_client, sender="alpha", type="task", before=day_ago) == {old.message_id}


def test_the_before_filter_reads_dates_times_and_offsets(admin_client):
    row = log(created_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    assert listed(admin_client, before="2026-03-02") == {row.message_id}
    assert listed(admin_client, before="2026-03-01") == set()
    assert listed(admin_client, before="2026-03-01 12:30") == {row.message_id}
    assert listed(admin_client, before="2026-03-01T13:00:00+02:00") == set()  # 11:00 UTC


def test_a_value_the_before_filter_cannot_read_shows_the_list_unfiltered(admin_client):
    response = admin_client.get(LIST, {"before": "yesterday-ish"})
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_the_filter_boxes_keep_the_other_filters_and_suggest_registered_agents(admin_client):
    Agent.objects.create(name="billing", token_hash="a" * 64)
    Agent.objects.create(name="pricing", token_hash="b" * 64)
    html = admin_client.get(LIST, {"type": "quote", "q": "x"}).content.decode()
    sender_form = re.search(r'<form method="get" class="exact-filter".*?>(.*?)</form>', html, re.S)
    assert sender_form
    assert '<input type="hidden" name="type" value="quote">' in sender_form.group(1)
    assert '<input type="hidden" name="q" value="x">' in sender_form.group(1)
    assert '<option value="billing"><option value="pricing">' in sender_form.group(1)


def test_lookups_other_than_the_filters_are_refused(admin_client):
    log(payload={"k": "secret"})
    assert admin_client.get(LIST, {"payload__contains": "secret"}).status_code == 400
    assert admin_client.get(LIST, {"message_id__icontains": "a"}).status_code == 400


def test_the_list_sorts_only_by_time(admin_client):
    log()
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(LIST, {"o": "1"})  # the message-id column: no index to sort by
    page = [q["sql"] for q in queries if "ORDER BY" in q["sql"] and "message_logs" in q["sql"]]
    assert page
    assert all('ORDER BY "message_logs"."message_id"' not in sql for sql in page)
    html = admin_client.get(LIST).content.decode()
    assert re.findall(r'class="sortable column-(\w+)', html) == ["created_at"]


def test_the_list_pages_without_counting(admin_client, monkeypatch):
    monkeypatch.setattr(messaging_admin.MessageLogAdmin, "list_per_page", 2)
    monkeypatch.setattr(UncountedPaginator, "max_pages", 2)
    now = timezone.now()
    ids = [log(created_at=now - timedelta(minutes=i)).message_id for i in range(5)]
    first = admin_client.get(LIST)
    assert [r.message_id for r in first.context["cl"].result_list] == ids[:2]
    assert "More message logs follow (not counted)." in first.content.decode()
    second = admin_client.get(LIST, {"p": "2"})
    assert [r.message_id for r in second.context["cl"].result_list] == ids[2:4]
    assert "filter by time, <em>before</em>, to go further" in second.content.decode()
    assert admin_client.get(LIST, {"p": "3"})["Location"].endswith("?e=1")  # past max_pages
    one = admin_client.get(LIST, {"q": ids[4]})
    assert "1 message log\n" in one.content.decode()
    last = admin_client.get(LIST, {"sender": "alpha", "before": str(now - timedelta(minutes=2))})
    assert [r.message_id for r in last.context["cl"].result_list] == ids[3:]
    assert "2 message logs" in last.content.decode()


LIST_VARIANTS = [
    {},
    {"status__exact": "dead"},
    {"sender": "alpha"},
    {"receiver": "beta"},
    {"type": "task"},
    {"before": "2026-01-01"},
    {"created_at__gte": "2026-01-01 00:00:00+00:00", "created_at__lt": "2026-02-01 00:00:00+00:00"},
    {"q": "some-message-id"},
    {"sender": "alpha", "status__exact": "sent", "p": "2"},
]


@pytest.mark.parametrize("params", LIST_VARIANTS)
def test_the_list_runs_no_distinct_and_no_count_over_the_log(admin_client, params):
    for _ in range(3):
        log()
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(LIST, params)
    assert response.status_code in (200, 302)  # page 2 of a short list: Django's redirect
    logged = [q["sql"] for q in queries if "message_logs" in q["sql"]]
    assert len(logged) == 1  # the page, a row longer than shown: nothing else reads the log
    for sql in logged:
        assert "DISTINCT" not in sql.upper(), sql
        assert "COUNT(" not in sql.upper(), sql


@pytest.fixture
def analysed_log():
    """A log with some spread (20 senders and receivers, a rare type among 4 common ones, mostly
    sent and delivered),
    analysed, so that PostgreSQL's planner sees something like production's proportions."""
    if connection.vendor != "postgresql":
        pytest.skip("query plans are PostgreSQL's; `make test` runs there")
    now = timezone.now()
    MessageLog.objects.bulk_create(
        MessageLog(
            message_id=f"m{i}",
            sender=f"agent-{i % 20}",
            receiver=f"agent-{(i * 7 + 3) % 20}",
            message_type="alert" if i % 50 == 0 else f"type-{i % 4}",
            status="dead" if i % 97 == 0 else ("sent", "delivered")[i % 2],
            correlation_id=f"conv-{i // 10}" if i % 3 == 0 else None,
            created_at=now - timedelta(seconds=i),
        )
        for i in range(2000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE message_logs")


def plan(sql: str, sort: bool = False) -> str:
    """PostgreSQL's plan for ``sql`` when it may not scan the table, nor sort unless ``sort``: a
    plan that still does shows that no index serves the query."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"SET LOCAL enable_sort = {'on' if sort else 'off'}")
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("params", "index"),
    [
        ({}, "idx_messages_created"),
        ({"o": "0"}, "idx_messages_created"),  # oldest first
        ({"o": "1"}, "message_logs_pkey"),  # by message id: not offered, the key's order instead
        ({"status__exact": "dead"}, "idx_messages_status"),
        ({"sender": "agent-3"}, "idx_messages_sender"),
        ({"receiver": "agent-4"}, "idx_messages_receiver"),
        ({"type": "alert"}, "idx_messages_type"),
        ({"before": "2026-01-01"}, "idx_messages_created"),
    ],
)
def test_each_page_of_the_list_is_read_in_index_order(admin_client, analysed_log, params, index):
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(LIST, params).status_code == 200
    page = [q["sql"] for q in queries if q["sql"].startswith('SELECT "message_logs"."id",')]
    assert len(page) == 1
    found = plan(page[0])
    assert index in found, found
    assert "Seq Scan" not in found, found
    assert not re.search(r"^\s*(->\s*)?Sort  \(", found, re.M), found  # Incremental Sort will do


@pytest.mark.postgres
def test_a_search_is_two_index_lookups(admin_client, analysed_log):
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(LIST, {"q": "m33"}).status_code == 200
    for sql in [q["sql"] for q in queries if 'FROM "message_logs"' in q["sql"]]:
        found = plan(sql, sort=True)  # the few rows found are sorted
        assert "idx_messages_message_id" in found, found
        assert "idx_messages_correlation" in found, found
        assert "Seq Scan" not in found, found


@pytest.mark.postgres
def test_a_page_that_takes_too_long_says_to_narrow_the_search(admin_client):
    if connection.vendor != "postgresql":
        pytest.skip("the time limit is PostgreSQL's statement_timeout")
    import psycopg

    # Another session's lock stands for a query that walks an index for seconds.
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"]
    ) as other:
        other.execute("LOCK TABLE message_logs IN ACCESS EXCLUSIVE MODE")
        began = time.monotonic()
        response = admin_client.get(LIST, {"sender": "alpha", "receiver": "omega"})
        assert time.monotonic() - began < 2
    assert response.status_code == 200
    assert response.context["cl"].paginator.timed_out
    assert "found no page of rows within 200 ms" in response.content.decode()
    assert admin_client.get(LIST).status_code == 200
    with connection.cursor() as cursor:  # the limit was the page's, not the transaction's
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("0",)


def test_the_conversation_view_shows_at_most_its_limit(admin_client, monkeypatch):
    monkeypatch.setattr(messaging_admin, "CONVERSATION_LIMIT", 2)
    for _ in range(3):
        log(correlation_id="long-one")
    page = admin_client.get(conversation("long-one"))
    assert len(page.context["rows"]) == 2
    assert "The first 2 messages of this conversation are shown." in page.content.decode()


# --- the other pages ----------------------------------------------------------------------------


def test_the_dead_letters_page_lists_them_and_queues_a_replay(
    admin_client, admin_user, queue, monkeypatch, agent_messaging
):
    monkeypatch.setattr(django_rq, "enqueue", queue.enqueue)
    receiver = f"adm-{uuid.uuid4().hex[:8]}"
    message_id = agent_messaging.dead_letter(receiver, {"k": "v"}, "broken handler")
    page = admin_client.get(DEAD, {"receiver": receiver})
    assert page.status_code == 200
    html = page.content.decode()
    assert message_id in html
    assert "RuntimeError: broken handler" in html
    entry = services.dead_letters(receiver=receiver)[0].entry_id
    response = admin_client.post(DEAD, {"entry_id": [entry]})
    assert response.status_code == 302
    job = queue.jobs[0]
    assert job.args == ([entry], admin_user.pk)  # ids only
    assert AuditLog.objects.get(action="replay_requested").actor == "admin"


def test_a_receiver_filter_that_is_not_a_name_finds_nothing(admin_client):
    page = admin_client.get(DEAD, {"receiver": "x}:in:y:{z"})
    assert page.status_code == 200
    assert services.dead_letters(receiver="x}:in:y:{z") == []


def test_the_conversation_view_shows_one_correlation_as_a_timeline(admin_client):
    now = timezone.now()
    for i, status in enumerate(["sent", "delivered"]):
        MessageLog.objects.create(
            message_id="m1",
            sender="a",
            receiver="b",
            status=status,
            correlation_id="conv-9",
            created_at=now + timedelta(seconds=i),
        )
    MessageLog.objects.create(message_id="unrelated-message", status="sent", correlation_id="other")
    html = admin_client.get(conversation("conv-9")).content.decode()
    assert html.index(">sent<") < html.index(">delivered<")
    assert "unrelated-message" not in html
    listing = admin_client.get(
        reverse("admin:messaging_app_messagelog_changelist"), {"q": "conv-9"}
    )
    assert b"conv-9" in listing.content


def test_the_replay_range_form_validates_and_queues(admin_client, admin_user, queue, monkeypatch):
    monkeypatch.setattr(django_rq, "enqueue", queue.enqueue)
    bad = admin_client.post(
        RANGE, {"receiver": "x", "start": "2026-01-02 10:00", "end": "2026-01-01 10:00"}
    )
    assert bad.status_code == 200
    assert b"The end must be after the start." in bad.content
    assert queue.count == 0
    good = admin_client.post(
        RANGE, {"receiver": "x", "start": "2026-01-01 10:00", "end": "2026-01-02 10:00"}
    )
    assert good.status_code == 302
    assert queue.jobs[0].args[0] == "x"
    assert AuditLog.objects.get(action="replay_range_requested").actor == "admin"


def test_the_stream_health_page_answers(admin_client, agent_messaging):
    receiver = f"sh-{uuid.uuid4().hex[:8]}"
    agent_messaging.dead_letter(receiver, {"k": "v"}, "broken handler")
    html = admin_client.get(STREAMS).content.decode()
    assert f"fdn:{{{receiver}}}:dead" in html


def test_staff_without_permission_see_nothing(staff_client):
    log(sender="alpha")
    for url in (LIST, DEAD, STREAMS, RANGE, conversation("x")):
        assert staff_client.get(url).status_code == 403
    assert staff_client.get(LIST, {"sender": "alpha"}).status_code == 403
    row = MessageLog.objects.get()
    change = reverse("admin:messaging_app_messagelog_change", args=[row.pk])
    assert staff_client.get(change).status_code == 403


def test_outsiders_are_sent_to_the_login_page(outsider_client):
    for url in (LIST, DEAD, STREAMS, RANGE):
        response = outsider_client.get(url)
        assert response.status_code == 302
        assert "/login/" in response["Location"]


def test_viewers_cannot_replay(staff_client, staff_user):
    staff_user.user_permissions.add(Permission.objects.get(codename="view_messagelog"))
    log(sender="alpha")
    assert listed(staff_client, sender="alpha") != set()
    assert staff_client.get(DEAD).status_code == 200
    assert staff_client.post(DEAD, {"entry_id": ["1-0"]}).status_code == 403
    assert staff_client.get(RANGE).status_code == 403
    staff_user.user_permissions.add(Permission.objects.get(codename="replay_messages"))
    staff_user = type(staff_user).objects.get(pk=staff_user.pk)
    staff_client.force_login(staff_user)
    assert staff_client.get(RANGE).status_code == 200
