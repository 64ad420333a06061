from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import User
from django.test import RequestFactory, override_settings

from audit_app import services
from audit_app.exceptions import AppendOnlyError
from audit_app.models import AuditLog

pytestmark = pytest.mark.django_db


def test_record_writes_one_row_with_every_field(rf: RequestFactory):
    request = rf.get("/", REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="curl/8.0")
    entry = services.record(
        "secrets.read",
        "ai_manager",
        "secret:openai",
        "read",
        success=False,
        request=request,
        error="no grant",
        grant="none",
    )
    row = AuditLog.objects.get(pk=entry.pk)
    assert (row.event_type, row.actor, row.resource, row.action) == (
        "secrets.read",
        "ai_manager",
        "secret:openai",
        "read",
    )
    assert row.success is False
    assert row.ip_address == "203.0.113.7"
    assert row.user_agent == "curl/8.0"
    assert row.error_message == "no grant"
    assert row.metadata == {"grant": "none"}
    assert row.created_at is not None


def test_the_entry_returned_is_the_row_written(django_assert_num_queries):
    """``record`` writes with one INSERT and returns the row as the database holds it; its
    time, the database's, is read when asked for."""
    with django_assert_num_queries(1):
        entry = services.record("secrets.read", "a", "secret:x", "read", version=3)
    row = AuditLog.objects.get(pk=entry.pk)
    for field in ("event_type", "actor", "resource", "action", "success", "metadata"):
        assert getattr(entry, field) == getattr(row, field)
    with django_assert_num_queries(1):
        assert entry.created_at == row.created_at
    assert entry.metadata == {"version": 3}
    with pytest.raises(AppendOnlyError):
        entry.save()


def test_a_user_actor_is_recorded_by_username():
    user = User.objects.create_user("alice")
    assert services.record("x.y", user).actor == "alice"


def test_an_object_with_a_name_is_recorded_by_name():
    class Agent:
        name = "ai_manager"

    assert services.record("x.y", Agent()).actor == "ai_manager"


def test_an_exception_is_recorded_with_its_type():
    entry = services.record("x.y", "a", success=False, error=TimeoutError("vault slow"))
    assert entry.error_message == "TimeoutError: vault slow"


def test_values_are_clipped_to_the_column_widths():
    entry = services.record("x.y", "a" * 300, resource="r" * 500, action="c" * 80)
    entry.refresh_from_db()
    assert len(entry.actor) == 100
    assert len(entry.resource) == 200
    assert len(entry.action) == 50


def test_an_event_type_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="event_type"):
        services.record("e" * 51, "a")
    with pytest.raises(ValueError, match="event_type"):
        services.record("", "a")
    assert not AuditLog.objects.exists()


def test_metadata_keys_that_name_a_secret_are_redacted():
    entry = services.record(
        "x.y",
        "a",
        value="hunter2",
        new_password="p",
        detail={"api_key": "k", "version": 3},
        version=4,
    )
    assert entry.metadata == {
        "value": "[redacted]",
        "new_password": "[redacted]",
        "detail": {"api_key": "[redacted]", "version": 3},
        "version": 4,
    }


def test_record_logs_a_line_without_metadata(caplog):
    with caplog.at_level(logging.INFO, logger="foundation.audit"):
        services.record("x.y", "a", "res", "act", note="canary-in-metadata")
    (record,) = caplog.records
    line = logging.getLogger().handlers[0].format(record)
    assert '"audit_event": "x.y", "action": "act", "actor": "a", "resource": "res"' in line
    assert "canary-in-metadata" not in line


def test_forwarded_for_is_ignored_unless_behind_a_proxy(rf: RequestFactory):
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.4")
    assert services.client_ip(request) == "10.0.0.2"
    with override_settings(BEHIND_PROXY=True):
        assert services.client_ip(request) == "198.51.100.4"


def test_a_malformed_address_is_not_recorded(rf: RequestFactory):
    request = rf.get("/", REMOTE_ADDR="not-an-ip")
    assert services.client_ip(request) is None


def test_rows_cannot_be_saved_again():
    entry = services.record("x.y", "a")
    entry.actor = "b"
    with pytest.raises(AppendOnlyError, match="UPDATE"):
        entry.save()
    assert AuditLog.objects.get().actor == "a"


def test_rows_cannot_be_deleted_through_the_orm():
    entry = services.record("x.y", "a")
    with pytest.raises(AppendOnlyError, match="DELETE"):
        entry.delete()
    with pytest.raises(AppendOnlyError, match="DELETE"):
        AuditLog.objects.all().delete()
    with pytest.raises(AppendOnlyError, match="UPDATE"):
        AuditLog.objects.update(actor="b")
    assert AuditLog.objects.get().actor == "a"


def test_control_characters_are_escaped_and_the_row_written_on_every_vendor(rf):
    """A NUL (PostgreSQL refuses it), a newline, an escape sequence and a Unicode line
    separator are kept as visible escapes; a backslash is doubled so no input passes for one."""
    request = rf.get("/", HTTP_USER_AGENT="evil\x1b[2J\r\nagent")
    entry = services.record(
        "x.y",
        "bad\x00actor",
        resource="line\nFAKE audit event=admin.login\u2028",
        action="read",
        request=request,
        error="C:\\path\x00",
        note="nul\x00inside",
        **{"key\n": ["a\x00", {"deep": "b\r"}]},
    )
    row = AuditLog.objects.get(pk=entry.pk)
    assert row.actor == "bad\\x00actor"
    assert row.resource == "line\\x0aFAKE audit event=admin.login\\u2028"
    assert row.user_agent == "evil\\x1b[2J\\x0d\\x0aagent"
    assert row.error_message == "C:\\\\path\\x00"
    assert row.metadata == {"note": "nul\\x00inside", "key\\x0a": ["a\\x00", {"deep": "b\\x0d"}]}


def test_the_audit_log_line_is_one_json_record():
    import json

    handler = logging.getLogger().handlers[0]
    with_records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            with_records.append(record)

    keep = Keep()
    logging.getLogger("foundation.audit").addHandler(keep)
    try:
        services.record("auth.login", "x\ny", resource="r", success=False)
    finally:
        logging.getLogger("foundation.audit").removeHandler(keep)
    line = handler.format(with_records[0])
    assert "\n" not in line
    fields = json.loads(line)
    assert fields["event"] == "audit"
    assert (fields["audit_event"], fields["actor"], fields["success"]) == (
        "auth.login",
        "x\\x0ay",
        False,
    )
