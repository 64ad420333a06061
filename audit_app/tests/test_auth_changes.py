"""Finding 6 of the review: changes to users, groups and permissions were not audited, nor the
RQ dashboard's destructive actions, which any staff user could take."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User

from audit_app.models import AuditLog

pytestmark = pytest.mark.django_db


def changes() -> list[tuple]:
    return list(
        AuditLog.objects.filter(event_type="auth.change")
        .order_by("id")
        .values_list("actor", "resource", "action", "metadata")
    )


def test_making_someone_a_superuser_through_the_orm_is_audited():
    user = User.objects.create_user("mallory", password="first-pass-123")
    user.is_superuser = True
    user.is_staff = True
    user.save()
    user.set_password("second-pass-456")
    user.save()
    rows = changes()
    assert rows[0][:3] == ("(system)", "auth.user:mallory", "add")
    assert rows[1] == (
        "(system)",
        "auth.user:mallory",
        "change",
        {"fields": ["is_staff", "is_superuser"], "is_staff": True, "is_superuser": True},
    )
    assert rows[2] == ("(system)", "auth.user:mallory", "change", {"fields": ["password"]})
    # Never the password, nor its hash.
    everything = str(list(AuditLog.objects.values()))
    assert "first-pass-123" not in everything
    assert "second-pass-456" not in everything
    assert user.password not in everything


def test_a_log_in_is_not_a_user_change():
    from django.test import Client

    User.objects.create_user("alice", password="alice-pass-123")
    assert Client().login(username="alice", password="alice-pass-123")
    assert [row[2] for row in changes()] == ["add"]


def test_groups_and_permissions_given_and_taken_are_audited_from_either_side():
    user = User.objects.create_user("bob")
    group = Group.objects.create(name="operators")
    permission = Permission.objects.get(codename="change_agent")
    user.groups.add(group)
    group.permissions.add(permission)
    user.user_permissions.add(permission)
    group.user_set.remove(user)
    user.user_permissions.clear()
    group.delete()
    assert [row[1:] for row in changes()[1:]] == [
        ("auth.group:operators", "add", None),
        ("auth.user:bob", "add_groups", {"members": ["operators"]}),
        ("auth.group:operators", "add_permissions", {"members": ["agents_app.change_agent"]}),
        ("auth.user:bob", "add_permissions", {"members": ["agents_app.change_agent"]}),
        ("auth.group:operators", "remove_users", {"members": ["bob"]}),
        ("auth.user:bob", "remove_permissions", {"members": ["agents_app.change_agent"]}),
        ("auth.group:operators", "delete", None),
    ]


def test_a_change_through_the_admin_names_the_admin(admin_client):
    user = User.objects.create_user("carol", password="carol-pass-123")
    response = admin_client.post(
        f"/admin/auth/user/{user.pk}/change/",
        {
            "username": "carol",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    row = changes()[-1]
    assert row[:3] == ("admin", "auth.user:carol", "change")
    assert row[3]["is_superuser"] is True
    assert AuditLog.objects.filter(event_type="auth.change").latest("id").ip_address == "127.0.0.1"


def test_the_rq_dashboard_is_for_superusers_and_its_actions_are_audited(staff_client, admin_client):
    assert staff_client.get("/admin/rq/").status_code == 403
    assert staff_client.post("/admin/rq/queues/0/empty/").status_code == 403
    refused = AuditLog.objects.filter(event_type="admin.rq", success=False).order_by("id")
    assert [(r.actor, r.resource) for r in refused] == [
        ("staffer", "rq:home"),
        ("staffer", "rq:clear"),
    ]
    assert admin_client.get("/admin/rq/").status_code == 200
    response = admin_client.post("/admin/rq/queues/0/empty/")
    assert response.status_code in (200, 302)
    done = AuditLog.objects.get(event_type="admin.rq", success=True)
    assert (done.actor, done.resource, done.action, done.metadata) == (
        "admin",
        "rq:clear",
        "clear",
        {"queue_index": 0},
    )
