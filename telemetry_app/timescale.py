"""Turning ``metrics`` into a TimescaleDB hypertable when the extension is there.

A hypertable's unique constraints must include its time column, so the seed's ``id`` primary key
becomes ``(id, timestamp)`` first. ``id`` stays unique in practice (it comes from the sequence),
and the ORM keeps addressing rows by ``id``. Without the extension (plain PostgreSQL or SQLite)
nothing changes: the table keeps its ``id`` key and ``idx_metrics_name_time``.
"""

from __future__ import annotations

from typing import Any

HYPERTABLE_STATEMENTS = (
    "CREATE EXTENSION IF NOT EXISTS timescaledb",
    "ALTER TABLE metrics DROP CONSTRAINT metrics_pkey",
    'ALTER TABLE metrics ADD PRIMARY KEY (id, "timestamp")',
    "SELECT create_hypertable('metrics', 'timestamp', migrate_data => true)",
)


def timescaledb_available(connection: Any) -> bool:
    """True on PostgreSQL servers where the timescaledb extension can be created."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        return cursor.fetchone() is not None


def convert_metrics_to_hypertable(schema_editor: Any) -> bool:
    """Run the conversion if possible; return whether it ran."""
    if not timescaledb_available(schema_editor.connection):
        return False
    for statement in HYPERTABLE_STATEMENTS:
        schema_editor.execute(statement)
    return True
