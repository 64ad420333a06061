"""The messaging admin's pages with a large message log, on PostgreSQL.

    .venv/bin/python benchmarks/admin_pages.py [--rows 10000000] [--pg-url URL] [--reuse]

Works in a database of its own, ``foundation_bench_admin`` (dropped and made again for each
fill), on the services' PostgreSQL or the server ``--pg-url`` names (give it one that runs as
production does, with fsync on: the services' test server runs with fsync off). It

- fills ``message_logs`` with ``--rows`` rows by ``INSERT ... SELECT generate_series`` with the
  indexes built afterwards, as a restore would: two rows a message (sent, then delivered, failed,
  dead or replayed), 20 agents, seven types from common to rare, a correlation id on a tenth of
  the messages (conversations of ten), ``created_at`` spread over the retention window; then
  ANALYZE (``--reuse`` keeps a fill of the same size from an earlier run);
- registers the 20 agents, and gives Redis (the services' database 4, not the messaging
  benchmark's 3; emptied first and last) their inboxes with pending entries, the events stream
  and 200 dead letters;
- times each page a user opens, as the median of 5 warm requests through Django's test client
  in this process (a logged-in superuser, DEBUG off): the server's whole work for the request,
  without a network. "Never meet" is a sender and a receiver with no message between them: the
  page gives up after its time limit and says so.

Prints one JSON line per page, ``{"page": ..., "median_ms": ..., "rows": N}``, and last
``{"slowest_admin_page_ms": ...}``. Before the pages, and only when asked: ``--recording-cost``
times the recorder's COPY with and without the indexes added for the admin
(``{"recording_us_per_row": ...}``); ``--purge-rows K`` adds K rows past the retention window
and times the retention purge over them (``{"purge": ...}``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import ensure_database, load_services_env  # noqa: E402

DATABASE = "foundation_bench_admin"
AGENT_COUNT = 20
CHUNK = 1_000_000
WARM_UP, TIMED = 2, 5

# Row g (from 1) belongs to message m = (g - 1) / 2: its "sent" row, then its outcome. Sender,
# receiver, type and outcome come from independent hashes of m (hashint8extended with its own
# seed for each), so that no two of them go together more than chance makes them; but no agent
# writes to itself, which makes "sender X, receiver X" the case of two filters that never meet.
FILL = """
INSERT INTO message_logs (id, message_id, sender, receiver, message_type, payload, status,
                          error_message, created_at, correlation_id, attempt, event_id)
SELECT g,
       md5(m::text),
       'agent-' || lpad(a::text, 2, '0'),
       'agent-' || lpad(((a + 1 + abs(hashint8extended(m, 2)) %% 19) %% 20)::text, 2, '0'),
       CASE WHEN t < 400 THEN 'task.assign' WHEN t < 700 THEN 'task.result'
            WHEN t < 900 THEN 'heartbeat' WHEN t < 950 THEN 'quote' WHEN t < 990 THEN 'reply'
            WHEN t < 999 THEN 'order.created' ELSE 'alert' END,
       jsonb_build_object('n', m, 'task', 'summarise report ' || (m %% 97), 'priority', m %% 5),
       status,
       CASE WHEN status IN ('failed', 'dead') THEN 'RuntimeError: handler failed' END,
       %(start)s::timestamptz + (g - %(first)s) * %(step_us)s * interval '1 microsecond',
       CASE WHEN (m / 10) %% 10 = 0 THEN 'conv-' || (m / 10) END,
       CASE status WHEN 'failed' THEN 2 + m %% 4 WHEN 'dead' THEN 5 ELSE 1 END,
       (1700000000000 + g) || '-0'
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g,
     LATERAL (SELECT (g - 1) / 2 AS m) AS k,
     LATERAL (SELECT abs(hashint8extended(m, 1)) %% 20 AS a,
                     abs(hashint8extended(m, 3)) %% 1000 AS t,
                     abs(hashint8extended(m, 4)) %% 1000 AS o) AS h,
     LATERAL (SELECT CASE WHEN (g - 1) %% 2 = 0 THEN 'sent'
                          WHEN o < 930 THEN 'delivered'
                          WHEN o < 980 THEN 'failed'
                          WHEN o < 990 THEN 'dead'
                          ELSE 'replayed' END AS status) AS s
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def message_id(m: int) -> str:
    # What the fill's md5() in SQL makes: an id, not a protection.
    return hashlib.md5(str(m).encode(), usedforsecurity=False).hexdigest()


# --- the fill -----------------------------------------------------------------------------------
def filled_rows(url: str) -> int | None:
    """The size of an earlier complete fill, if there is one."""
    import psycopg

    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT rows FROM bench_fill").fetchone()
            return int(row[0]) if row else None
    except psycopg.Error:
        return None


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(os.environ["FOUNDATION_PG_URL"], autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    ensure_database(DATABASE)


def drop_indexes(conn: Any, table: str) -> list[tuple[str, str]]:
    """Drop a table's indexes but its primary key, for a fill; returns them to build again."""
    indexes: list[tuple[str, str]] = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname <> %s",
        [table, f"{table}_pkey"],
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    return indexes


def build_indexes(conn: Any, table: str, indexes: list[tuple[str, str]], began: float) -> None:
    """Build the dropped indexes again, then the sequence and the statistics, as a restore."""
    for name, definition in indexes:
        conn.execute(definition)
        log(f"built {name} at {time.monotonic() - began:.0f} s")
    conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}")  # noqa: S608  # nosec B608
    conn.execute(f"ANALYZE {table}")


def fill(url: str, rows: int, window: timedelta) -> None:
    """The message log's rows, with its indexes built afterwards (as a restore builds them)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        indexes = drop_indexes(conn, "message_logs")
        conn.execute("ALTER TABLE message_logs DROP CONSTRAINT message_logs_pkey")
        start = datetime.now(UTC) - window + timedelta(hours=1)
        step_us = (window - timedelta(hours=2)) / timedelta(microseconds=1) / rows
        began = time.monotonic()
        for first in range(1, rows + 1, CHUNK):
            last = min(first + CHUNK - 1, rows)
            at = start + timedelta(microseconds=(first - 1) * step_us)
            conn.execute(FILL, {"first": first, "last": last, "start": at, "step_us": step_us})
            log(f"filled {last:,} rows in {time.monotonic() - began:.0f} s")
        conn.execute("ALTER TABLE message_logs ADD CONSTRAINT message_logs_pkey PRIMARY KEY (id)")
        build_indexes(conn, "message_logs", indexes, began)
        conn.execute("CREATE TABLE bench_fill (rows bigint)")
        conn.execute("INSERT INTO bench_fill VALUES (%s)", [rows])
        log(f"fill done in {time.monotonic() - began:.0f} s")


def time_purge(url: str, rows: int, extra: int, window: timedelta) -> None:
    """Add ``extra`` rows past the retention window, then time the purge that removes them."""
    import psycopg

    from messaging_app import retention

    with psycopg.connect(url, autocommit=True) as conn:
        start = datetime.now(UTC) - window - timedelta(days=2)
        step_us = timedelta(days=1) / timedelta(microseconds=1) / extra
        for first in range(rows + 1, rows + extra + 1, CHUNK):
            last = min(first + CHUNK - 1, rows + extra)
            at = start + timedelta(microseconds=(first - rows - 1) * step_us)
            conn.execute(FILL, {"first": first, "last": last, "start": at, "step_us": step_us})
        conn.execute("ANALYZE message_logs")
    began = time.perf_counter()
    report = retention.purge(actor="benchmark")
    seconds = time.perf_counter() - began
    print(
        json.dumps(
            {
                "purge": "message_logs",
                "deleted": report.deleted,
                "batches": report.batches,
                "seconds": round(seconds, 2),
                "rows_per_s": round(report.deleted / seconds),
                "rows": rows,
            }
        ),
        flush=True,
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) message_logs")  # what autovacuum does after a purge


def time_recording(url: str, rows: int, rounds: int = 5) -> None:
    """What the indexes added for the admin cost the recorder: its COPY of 500-row batches, each
    committed, into two copies of the log's first million rows, one with the indexes 0003 left
    and one with all of them, alternated over ``rounds`` rounds of ``rows`` rows each."""
    import psycopg

    added = ("idx_messages_created", "idx_messages_type", "idx_messages_status")
    columns = (
        "event_id, message_id, sender, receiver, message_type, payload, status, error_message,"
        " correlation_id, attempt, created_at"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        definitions = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'message_logs'"
        ).fetchall()
        for table, names in (
            ("bench_seed_indexes", {name for name, _ in definitions} - set(added)),
            ("bench_all_indexes", {name for name, _ in definitions}),
        ):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(
                f"CREATE TABLE {table} (LIKE message_logs INCLUDING DEFAULTS INCLUDING IDENTITY)"
            )
            # Our own two table names, never input.
            conn.execute(f"INSERT INTO {table} SELECT * FROM message_logs WHERE id <= 1000000")  # noqa: S608  # nosec B608
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1000000)")
            for name, definition in definitions:
                if name in names:
                    conn.execute(
                        definition.replace(f"INDEX {name} ", f"INDEX {table}_{name} ").replace(
                            " public.message_logs ", f" public.{table} "
                        )
                    )
            conn.execute(f"ANALYZE {table}")
    now = datetime.now(UTC)
    batch = [
        (
            f"{1800000000000 + i}-0",
            message_id(10**9 + i),
            f"agent-{i % 20:02d}",
            f"agent-{(i + 7) % 20:02d}",
            "task.assign",
            json.dumps({"n": i, "task": "summarise report"}),
            "sent",
            None,
            f"conv-b{i // 10}" if i % 10 == 0 else None,
            1,
            now,
        )
        for i in range(500)
    ]
    spent: dict[str, list[float]] = {"bench_seed_indexes": [], "bench_all_indexes": []}
    with psycopg.connect(url) as conn:
        for round_ in range(rounds):
            order = list(spent) if round_ % 2 == 0 else list(reversed(spent))
            for table in order:
                began = time.perf_counter()
                for _ in range(rows // len(batch)):
                    with (
                        conn.transaction(),
                        conn.cursor() as cursor,
                        cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
                    ):
                        for row in batch:
                            copy.write_row(row)
                spent[table].append((time.perf_counter() - began) / rows * 1e6)
    with psycopg.connect(url, autocommit=True) as conn:
        for table in spent:
            conn.execute(f"DROP TABLE {table}")
    seed, full = (statistics.median(spent[t]) for t in spent)
    print(
        json.dumps(
            {
                "recording_us_per_row": {"indexes_of_0003": round(seed, 2), "all": round(full, 2)},
                "added_us_per_row": round(full - seed, 2),
                "rows": rows * rounds,
            }
        ),
        flush=True,
    )


# --- the site's other data ----------------------------------------------------------------------
def agents_and_streams(redis_url: str) -> list[str]:
    """Twenty registered agents with streams as protocol 2 lays them out: each has 100
    messages from another (20 of them pending), 50 status events and 10 dead letters."""
    import redis

    from agents_app.models import Agent
    from foundation_client.protocol import (
        AGENTS,
        GROUP,
        DeadLetter,
        Envelope,
        dead_letters,
        events,
        inbox,
        status_event,
    )

    names = [f"agent-{i:02d}" for i in range(AGENT_COUNT)]
    Agent.objects.all().delete()
    Agent.objects.bulk_create(
        Agent(name=name, token_hash=hashlib.sha256(name.encode()).hexdigest()) for name in names
    )
    r: Any = redis.Redis.from_url(redis_url)
    r.flushdb()
    r.sadd(AGENTS, *names)
    for n, name in enumerate(names):
        sender = names[(n + 1) % AGENT_COUNT]
        stream = inbox(name, sender)
        pipe = r.pipeline(transaction=False)
        for i in range(100):
            pipe.xadd(stream, Envelope(sender, name, "task.assign", {"n": i}).to_entry())
        for i in range(50):
            head = Envelope(sender, name, "task.assign", None, id=f"e{n}-{i}").head()
            pipe.xadd(events(name), status_event("delivered", [head]))
        for i in range(10):
            envelope = Envelope(sender, name, "quote", {"i": i})
            letter = DeadLetter.fields(
                "RuntimeError: handler failed", stream, f"{1700000000000 + i}-0", envelope, None
            )
            pipe.xadd(dead_letters(name), letter)
        pipe.execute()
        r.xgroup_create(stream, GROUP, id="0")
        r.xreadgroup(GROUP, f"host-{n}-a1b2c3", {stream: ">"}, count=20)  # pending
    return names


# --- the pages ----------------------------------------------------------------------------------
# The audit log: never pruned, so a year of it. Row g: one of 23 event types (reads are most,
# an unlock is rare), 200 actors, 100 addresses, 5 % failures; the newest 20,000 rows fall in the
# last hour, a third of them failures (what Suspicious activity reads).
AUDIT_EVENTS = (
    ["secrets.read"] * 70
    + ["auth.login"] * 10
    + ["admin.change"] * 5
    + ["secrets.write"] * 5
    + ["messaging.replay"] * 3
    + ["auth.change", "agents.grant", "agents.token", "secrets.rotate", "auth.logout"]
    + ["secrets.rollback", "db.grant"]
)
AUDIT_FILL = """
INSERT INTO audit_logs (id, event_type, actor, resource, action, ip_address, user_agent, success,
                        error_message, metadata, created_at)
SELECT g,
       (%(events)s::text[])[1 + (hashint8extended(g, 1) & 2147483647) %% 100],
       CASE WHEN g %% 2 = 0 THEN 'agent-' ELSE 'admin-' END
           || lpad(((hashint8extended(g, 2) & 2147483647) %% 100)::text, 3, '0'),
       'secret:prod/key-' || ((hashint8extended(g, 3) & 2147483647) %% 1000),
       'read',
       '10.0.' || ((hashint8extended(g, 4) & 2147483647) %% 10) || '.'
           || ((hashint8extended(g, 5) & 2147483647) %% 10),
       'agent/1.0',
       CASE WHEN g > %(last)s - 20000 THEN (hashint8extended(g, 6) & 2147483647) %% 3 <> 0
            ELSE (hashint8extended(g, 6) & 2147483647) %% 20 <> 0 END,
       NULL,
       '{"version": 3}'::jsonb,
       CASE WHEN g > %(last)s - 20000
            THEN now() - ((%(last)s - g) * interval '150 milliseconds')
            ELSE %(start)s + (g * %(step_us)s) * interval '1 microsecond' END
FROM generate_series(%(first)s::bigint, %(last_chunk)s::bigint) AS g
"""


def fill_audit(url: str, rows: int) -> None:
    """The audit log's rows, its indexes built afterwards (the trigger forbids nothing here)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        indexes = drop_indexes(conn, "audit_logs")
        start = datetime.now(UTC) - timedelta(days=365)
        step_us = timedelta(days=364) / timedelta(microseconds=1) / rows
        began = time.monotonic()
        for first in range(1, rows + 1, CHUNK):
            last_chunk = min(first + CHUNK - 1, rows)
            conn.execute(
                AUDIT_FILL,
                {
                    "events": AUDIT_EVENTS,
                    "first": first,
                    "last_chunk": last_chunk,
                    "last": rows,
                    "start": start,
                    "step_us": step_us,
                },
            )
            log(f"filled {last_chunk:,} audit rows in {time.monotonic() - began:.0f} s")
        build_indexes(conn, "audit_logs", indexes, began)


def audit_pages() -> list[tuple[str, str, dict[str, str]]]:
    from django.urls import reverse
    from django.utils import timezone

    listing = reverse("admin:audit_app_auditlog_changelist")
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    week = {
        "created_at__gte": str(today - timedelta(days=7)),
        "created_at__lt": str(today + timedelta(days=1)),
    }
    return [
        ("audit list", listing, {}),
        ("audit list, failures", listing, {"success__exact": "0"}),
        ("audit list, event secrets.read (common)", listing, {"event": "secrets.read"}),
        ("audit list, event db.grant (rare)", listing, {"event": "db.grant"}),
        ("audit list, past 7 days", listing, week),
        ("audit list, actor", listing, {"actor": "agent-042"}),
        ("audit list, actor's failures", listing, {"actor": "agent-042", "success__exact": "0"}),
        ("audit list, last page", listing, {"p": "100"}),
        ("audit search, an actor", listing, {"q": "admin-007"}),
        ("audit search, an address", listing, {"q": "10.0.3.4"}),
        ("audit search, a resource", listing, {"q": "secret:prod/key-17"}),
        ("audit entry", reverse("admin:audit_app_auditlog_change", args=[1000]), {}),
        ("suspicious activity", reverse("admin:audit_app_suspiciousactivity_changelist"), {}),
    ]


def pages(rows: int, window: timedelta) -> list[tuple[str, str, dict[str, str]]]:
    from django.urls import reverse
    from django.utils import timezone

    listing = reverse("admin:messaging_app_messagelog_changelist")
    middle = (rows // 2 - 1) // 2  # the message of the row in the middle of the log
    conversation = f"conv-{middle // 100 * 10}"
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    # The time filter's "Past 7 days", as its link has it.
    week = {
        "created_at__gte": str(today - timedelta(days=7)),
        "created_at__lt": str(today + timedelta(days=1)),
    }
    before = (timezone.now() - window / 2).strftime("%Y-%m-%d %H:%M")
    both = {"sender": "agent-03", "status__exact": "failed"}
    apart = {"sender": "agent-03", "receiver": "agent-03"}
    return [
        ("list", listing, {}),
        ("list, status dead (rare)", listing, {"status__exact": "dead"}),
        ("list, status sent (common)", listing, {"status__exact": "sent"}),
        ("list, sender", listing, {"sender": "agent-03"}),
        ("list, receiver", listing, {"receiver": "agent-07"}),
        ("list, type alert (rare)", listing, {"type": "alert"}),
        ("list, type task.assign (common)", listing, {"type": "task.assign"}),
        ("list, past 7 days", listing, week),
        ("list, before mid-window", listing, {"before": before}),
        ("list, sender and status failed", listing, both),
        ("list, sender and receiver never meet", listing, apart),
        ("list, last page", listing, {"p": "100"}),
        ("list, oldest first", listing, {"o": "0"}),
        ("search by message id", listing, {"q": message_id(middle)}),
        ("search by correlation id", listing, {"q": conversation}),
        ("message", reverse("admin:messaging_app_messagelog_change", args=[rows // 2]), {}),
        (
            "conversation",
            reverse("admin:messaging_app_messagelog_conversation", args=[conversation]),
            {},
        ),
        ("dead letters", reverse("admin:messaging_app_messagelog_dead_letters"), {}),
        ("stream health", reverse("admin:messaging_app_messagelog_streams"), {}),
        ("replay range form", reverse("admin:messaging_app_messagelog_replay_range"), {}),
    ]


def median_ms(client: Any, path: str, params: dict[str, str]) -> float:
    def get() -> float:
        began = time.perf_counter()
        response = client.get(path, params, secure=True)
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            raise SystemExit(f"{path} {params} answered {response.status_code}")
        return elapsed

    for _ in range(WARM_UP):
        get()
    return statistics.median(get() for _ in range(TIMED)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--audit-rows", type=int, default=5_000_000, help="rows of audit_logs")
    parser.add_argument("--pg-url", help="a PostgreSQL server's URL (default: the services')")
    parser.add_argument("--reuse", action="store_true", help="keep an earlier fill of --rows")
    parser.add_argument("--purge-rows", type=int, default=0, help="also time the purge of K rows")
    parser.add_argument(
        "--recording-cost",
        action="store_true",
        help="also time what the admin's indexes cost the recorder's COPY",
    )
    args = parser.parse_args()

    if args.pg_url:
        os.environ["FOUNDATION_PG_URL"] = args.pg_url
    # As production runs: DEBUG off (no query log, no template debugging), HTTPS.
    os.environ.update(DEBUG="false", ALLOWED_HOSTS="testserver", LOG_LEVEL="WARNING")
    redis_url = load_services_env(redis_db=4, database=DATABASE)
    url = os.environ["DATABASE_URL"]

    import django

    warnings.filterwarnings("ignore", message="No directory at")  # WhiteNoise: no collectstatic
    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings

    # Without `collectstatic`: static URLs unhashed, which changes nothing the pages cost.
    override_settings(
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    ).enable()

    window = timedelta(days=settings.MESSAGE_LOG_RETENTION_DAYS)
    if not (args.reuse and filled_rows(url) == args.rows):
        recreate_database()
        call_command("migrate", verbosity=0)
        fill(url, args.rows, window)
        fill_audit(url, args.audit_rows)
    with connection.cursor() as cursor:
        cursor.execute("SHOW fsync")
        if cursor.fetchone() != ("on",):
            log("warning: this PostgreSQL runs with fsync off, unlike production")
    if args.recording_cost:
        time_recording(url, 50_000)
    if args.purge_rows:
        time_purge(url, args.rows, args.purge_rows, window)
    agents_and_streams(redis_url)
    admin, _ = User.objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(admin)

    slowest = 0.0
    timed = [(*page, {"rows": args.rows}) for page in pages(args.rows, window)]
    timed += [(*page, {"audit_rows": args.audit_rows}) for page in audit_pages()]
    for name, path, params, size in timed:
        ms = median_ms(client, path, params)
        slowest = max(slowest, ms)
        print(json.dumps({"page": name, "median_ms": round(ms, 1), **size}), flush=True)
    print(json.dumps({"slowest_admin_page_ms": round(slowest, 1)}), flush=True)
    import redis

    redis.Redis.from_url(redis_url).flushdb()  # its streams must not meet a later test run


if __name__ == "__main__":
    main()
