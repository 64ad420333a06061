"""The schema the seed asks for, checked on the database this run uses (SQLite or PostgreSQL)."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = pytest.mark.django_db

# table -> {column: (nullable, has a database default)}
SEED_COLUMNS = {
    "secrets_metadata": {
        "id": False,
        "secret_name": False,
        "provider": True,
        "storage_backend": True,
        "last_rotated": True,
        "rotation_policy_days": True,
        "created_at": False,
        "updated_at": False,
    },
    "system_state": {"id": False, "state_key": False, "state_value": False, "updated_at": False},
    "metrics": {
        "id": False,
        "metric_name": False,
        "metric_value": False,
        "unit": True,
        "tags": True,
        "timestamp": False,
    },
    "message_logs": {
        "id": False,
        "message_id": True,
        "sender": True,
        "receiver": True,
        "message_type": True,
        "payload": True,
        "status": True,
        "error_message": True,
        "created_at": False,
    },
    "config_history": {
        "id": False,
        "config_key": True,
        "old_value": True,
        "new_value": True,
        "changed_by": True,
        "changed_at": False,
    },
    "audit_logs": {
        "id": False,
        "event_type": False,
        "actor": True,
        "resource": True,
        "action": True,
        "ip_address": True,
        "user_agent": True,
        "success": True,
        "error_message": True,
        "metadata": True,
        "created_at": False,
    },
}

SEED_INDEXES = {
    "secrets_metadata": {"idx_secrets_provider": ["provider"]},
    "metrics": {"idx_metrics_name_time": ["metric_name", "timestamp"]},
    "message_logs": {
        "idx_messages_sender": ["sender", "created_at"],
        "idx_messages_receiver": ["receiver", "created_at"],
    },
    "config_history": {"idx_config_history_key": ["config_key", "changed_at"]},
    "audit_logs": {
        "idx_audit_logs_event": ["event_type", "created_at"],
        "idx_audit_logs_actor": ["actor"],
    },
}

SEED_WIDTHS = {
    ("secrets_metadata", "secret_name"): 100,
    ("secrets_metadata", "provider"): 50,
    ("secrets_metadata", "storage_backend"): 50,
    ("system_state", "state_key"): 100,
    ("metrics", "metric_name"): 100,
    ("metrics", "unit"): 20,
    ("message_logs", "message_id"): 100,
    ("message_logs", "message_type"): 50,
    ("message_logs", "status"): 20,
    ("config_history", "config_key"): 200,
    ("config_history", "changed_by"): 100,
    ("audit_logs", "event_type"): 50,
    ("audit_logs", "resource"): 200,
    ("audit_logs", "ip_address"): 45,
}


def describe(table: str):
    with connection.cursor() as cursor:
        return {c.name: c for c in connection.introspection.get_table_description(cursor, table)}


def constraints(table: str):
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, table)


# Columns added beyond the seed, each for a documented reason (docs/architecture.md).
EXTRA_COLUMNS = {
    "secrets_metadata": {
        "description",
        "current_version",
        "last_read_at",
        "last_read_by",
        "rotation_reminded_at",
    },
    "message_logs": {"correlation_id", "attempt", "event_id", "traceparent"},
}


@pytest.mark.parametrize("table", sorted(SEED_COLUMNS))
def test_every_seed_table_has_the_seed_columns_and_nullability(table):
    columns = describe(table)
    assert set(columns) == set(SEED_COLUMNS[table]) | EXTRA_COLUMNS.get(table, set())
    for name, nullable in SEED_COLUMNS[table].items():
        assert bool(columns[name].null_ok) == nullable, f"{table}.{name} nullability"


def declared_width(table: str, column: str) -> int | None:
    if connection.vendor == "sqlite":
        # SQLite keeps the declared type ("varchar(100)") though it does not enforce it.
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA table_info({table})")
            declared = {row[1]: row[2] for row in cursor.fetchall()}[column]
        match = re.fullmatch(r"varchar\((\d+)\)", declared, re.IGNORECASE)
        return int(match.group(1)) if match else None
    size = describe(table)[column].display_size
    return int(size) if size is not None else None


@pytest.mark.parametrize(("table", "column"), sorted(SEED_WIDTHS))
def test_text_columns_have_the_seed_widths(table, column):
    assert declared_width(table, column) == SEED_WIDTHS[(table, column)]


@pytest.mark.parametrize("table", sorted(SEED_INDEXES))
def test_the_seed_indexes_exist_under_their_names(table):
    found = constraints(table)
    for name, columns in SEED_INDEXES[table].items():
        assert name in found, f"{name} missing on {table}"
        assert found[name]["columns"] == columns


def test_descending_time_indexes_are_descending():
    for table, index in [
        ("metrics", "idx_metrics_name_time"),
        ("config_history", "idx_config_history_key"),
    ]:
        assert constraints(table)[index]["orders"][-1] == "DESC"


def test_the_message_log_time_indexes_are_ascending():
    """A departure from the seed (docs/messaging.md): read backwards, they give the newest
    first all the same, and the recorder's inserts cost PostgreSQL less at their right end."""
    for index in ("idx_messages_sender", "idx_messages_receiver", "idx_messages_created"):
        assert constraints("message_logs")[index]["orders"][-1] == "ASC"


@pytest.mark.parametrize(
    ("table", "column"),
    [("secrets_metadata", "secret_name"), ("system_state", "state_key")],
)
def test_the_seed_unique_constraints_exist(table, column):
    assert any(c["unique"] and c["columns"] == [column] for c in constraints(table).values())


@pytest.mark.postgres
def test_message_log_ids_are_bigint_a_documented_departure_from_serial():
    # docs/messaging.md, "The message log at scale": a 32-bit sequence runs out within days at
    # the recorder's rate. The sequence must be 64-bit too, not only the column.
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's integer keys are 64-bit already")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_name = 'message_logs' AND column_name = 'id'"
        )
        assert cursor.fetchone() == ("bigint",)
        cursor.execute(
            "SELECT s.data_type FROM pg_sequences s"
            " WHERE s.schemaname || '.' || s.sequencename"
            " = pg_get_serial_sequence('message_logs', 'id')"
        )
        assert cursor.fetchone() == ("bigint",)


def test_database_defaults_fill_created_at_and_rotation_policy():
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO secrets_metadata (secret_name) VALUES ('raw_insert')")
        cursor.execute(
            "SELECT rotation_policy_days, created_at, updated_at FROM secrets_metadata"
            " WHERE secret_name = 'raw_insert'"
        )
        days, created, updated = cursor.fetchone()
    assert days == 90
    assert created is not None
    assert updated is not None


def test_suspicious_activities_is_a_view():
    with connection.cursor() as cursor:
        tables = {t.name: t.type for t in connection.introspection.get_table_list(cursor)}
    assert tables["suspicious_activities"] == "v"


def test_the_models_and_the_migrations_agree():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_every_app_migrates_down_to_zero_and_back_up():
    apps = [
        "audit_app",
        "secrets_app",
        "telemetry_app",
        "messaging_app",
        "config_app",
        "agents_app",
    ]
    for app in apps:
        call_command("migrate", app, "zero", verbosity=0)
    with connection.cursor() as cursor:
        left = set(connection.introspection.table_names(cursor, include_views=True))
    assert not left & {*SEED_COLUMNS, "suspicious_activities"}
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        back = set(connection.introspection.table_names(cursor, include_views=True))
    assert {*SEED_COLUMNS, "suspicious_activities"} <= back


@pytest.mark.django_db(transaction=True)
def test_grants_and_whoever_may_manage_them_survive_the_move_to_secrets_app():
    """secrets_app's 0005 adopts agents_app's grants table: on a database from before, the rows,
    the admin's history of them and the staff given ``manage_grants`` all follow."""
    from django.contrib.auth.models import Permission, User
    from django.contrib.contenttypes.models import ContentType
    from django.db.migrations.executor import MigrationExecutor

    before = [
        ("agents_app", "0004_agent_credential_permissions"),
        ("secrets_app", "0004_rotation_reminders"),
    ]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        agent = old.get_model("agents_app", "Agent").objects.create(name="kept", token_hash="h")
        old.get_model("agents_app", "SecretGrant").objects.create(agent=agent, pattern="prod/*")
        # As a site from before has them: the grant's content type and the permission on the
        # agent's (contenttypes and auth themselves are unchanged by these migrations).
        ContentType.objects.clear_cache()
        ContentType.objects.filter(app_label="secrets_app", model="secretgrant").update(
            app_label="agents_app"
        )
        agent_type = ContentType.objects.get(app_label="agents_app", model="agent")
        Permission.objects.filter(codename="manage_grants").update(content_type=agent_type)
        staff = User.objects.create(username="granter", is_staff=True)
        staff.user_permissions.add(Permission.objects.get(codename="manage_grants"))
        assert User.objects.get(pk=staff.pk).has_perm("agents_app.manage_grants")
    finally:
        MigrationExecutor(connection).migrate(latest)
    ContentType.objects.clear_cache()

    from secrets_app.models import SecretGrant

    assert list(SecretGrant.objects.values_list("agent__name", "pattern")) == [("kept", "prod/*")]
    assert SecretGrant._meta.db_table == "secrets_app_secretgrant"
    assert "agents_app_secretgrant" not in connection.introspection.table_names()
    grant_type = ContentType.objects.get_for_model(SecretGrant)
    assert Permission.objects.filter(content_type=grant_type).count() == 5  # 4 + manage_grants
    user = User.objects.get(username="granter")
    assert user.has_perm("secrets_app.manage_grants")
    assert not user.has_perm("agents_app.manage_grants")
