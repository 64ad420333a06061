"""Messaging pages in the admin: access, conversation, dead letters and replay, streams."""

from __future__ import annotations

import uuid
from datetime import timedelta

import django_rq
import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from audit_app.models import AuditLog
from messaging_app import services
from messaging_app.models import MessageLog

pytestmark = pytest.mark.django_db

DEAD = reverse("admin:messaging_dead_letters")
STREAMS = reverse("admin:messaging_streams")
RANGE = reverse("admin:messaging_replay_range")


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
    html = admin_client.get(
        reverse("admin:messaging_conversation", args=["conv-9"])
    ).content.decode()
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
    for url in (DEAD, STREAMS, RANGE, reverse("admin:messaging_conversation", args=["x"])):
        assert staff_client.get(url).status_code == 403


def test_viewers_cannot_replay(staff_client, staff_user):
    staff_user.user_permissions.add(Permission.objects.get(codename="view_messagelog"))
    assert staff_client.get(DEAD).status_code == 200
    assert staff_client.post(DEAD, {"entry_id": ["1-0"]}).status_code == 403
    assert staff_client.get(RANGE).status_code == 403
    staff_user.user_permissions.add(Permission.objects.get(codename="replay_messages"))
    staff_user = type(staff_user).objects.get(pk=staff_user.pk)
    staff_client.force_login(staff_user)
    assert staff_client.get(RANGE).status_code == 200
