"""Without TimescaleDB (as here) ``metrics`` stays a plain table keyed by ``id``."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from telemetry_app import timescale
from telemetry_app.models import Metric

pytestmark = pytest.mark.django_db


def test_timescaledb_is_not_available_on_this_server():
    assert timescale.timescaledb_available(connection) is False


def test_the_conversion_does_nothing_without_the_extension():
    with connection.schema_editor() as editor:
        assert timescale.convert_metrics_to_hypertable(editor) is False


def test_metrics_keeps_its_id_primary_key_and_the_seed_index():
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, "metrics")
    primary = [c["columns"] for c in found.values() if c["primary_key"]]
    assert primary == [["id"]]
    assert found["idx_metrics_name_time"]["columns"] == ["metric_name", "timestamp"]


def test_the_hypertable_statements_put_the_timestamp_in_the_primary_key():
    statements = timescale.HYPERTABLE_STATEMENTS
    assert 'ADD PRIMARY KEY (id, "timestamp")' in statements[2]
    assert statements[-1].startswith("SELECT create_hypertable('metrics', 'timestamp'")


def test_a_sample_round_trips_with_four_decimal_places():
    Metric.objects.create(metric_name="latency", metric_value=Decimal("12.3456"), unit="ms")
    sample = Metric.objects.get()
    assert sample.metric_value == Decimal("12.3456")
    assert sample.timestamp is not None
    assert str(sample) == "latency=12.3456ms"
