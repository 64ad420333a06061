"""Messaging beside its baselines, in one run, on one Redis, as deployed.

    scripts/services start && .venv/bin/python benchmarks/messaging.py [--messages 50000]
        [--pg-url postgres://postgres@127.0.0.1:27433/foundation_bench]

As in production: the producer and the consumer are agents with Redis ACL users of their own
(``protocol.acl_user``/``acl_rules``, created through the default user for the run and deleted
at its end) registered in ``fdn:sys:agents``; the recorder is ``manage.py messaging_recorder``
with its defaults (batch 500, niceness 10). Point ``--pg-url`` (or ``BENCH_PG_URL``) at a
PostgreSQL that runs durable (``fsync`` on) for figures that mean something: the services' test
server runs with ``fsync`` off. Redis is the services' (AOF, ``appendfsync everysec``).

Prints one JSON line per figure:
- ``foundation_msgs_per_s``: send -> handler -> ack for N small messages, a producer process
  (``send_many`` by 500) and a consumer process (``Messaging.run``, batches of 500), with the
  recorder running against PostgreSQL; the median of several rounds, alternated with the raw
  loop's;
- ``recorder_lag_s``: from the last acknowledgement until every message's two rows are logged;
- ``raw_redis_msgs_per_s``: the same two processes written directly with redis-py (XADD
  pipelined by 500, XREADGROUP COUNT 500, XACK), no envelope, no events, default user;
- ``celery_tasks_per_s``: Celery 5 on the same Redis draining 20,000 no-op tasks (prefork, -c 2);
- the ratios; send -> handler latency p50/p99 at a steady 1,000 msg/s with the recorder
  running (``latency_p99_ms``, the target) and without it (``latency_p99_no_recorder_ms``).
Each run uses a Redis database of its own (``--redis-db``, the services' database 3), emptied
first and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import emit, ensure_database, load_services_env  # noqa: E402

BATCH = 500
PRODUCER = "bench-producer"
CONSUMER = "bench-consumer"
#: The children's Redis URLs come in the environment (they hold passwords): the agent's own
#: (its ACL user) and the default user's, for the benchmark's bookkeeping keys only.
AGENT_URL = "BENCH_AGENT_URL"
ADMIN_URL = "BENCH_ADMIN_URL"


class Agents:
    """The benchmark's two agents on the wire: an ACL user each, with a password of the run's,
    and their names in the registry."""

    def __init__(self, admin_url: str) -> None:
        import redis

        self.admin_url = admin_url
        self.admin = redis.Redis.from_url(admin_url)
        self.urls: dict[str, str] = {}

    def create(self) -> None:
        import secrets

        from foundation_client.protocol import acl_rules, acl_user
        from foundation_client.testing import url_for

        for name in (PRODUCER, CONSUMER):
            password = secrets.token_urlsafe(24)
            self.admin.execute_command(
                "ACL", "SETUSER", acl_user(name), "reset", "on", f">{password}", *acl_rules(name)
            )
            self.urls[name] = url_for(self.admin_url, acl_user(name), password)

    def register(self) -> None:
        """What the site does when it creates an agent (again after every FLUSHDB): the
        registry, and the protocol's scripts, which agents may only run by SHA."""
        from foundation_client.protocol import AGENT_SCRIPTS, AGENTS

        for source in AGENT_SCRIPTS:
            self.admin.script_load(source)

        self.admin.sadd(AGENTS, PRODUCER, CONSUMER)

    def delete(self) -> None:
        from foundation_client.protocol import acl_user

        for name in (PRODUCER, CONSUMER):
            self.admin.execute_command("ACL", "DELUSER", acl_user(name))
        self.admin.flushdb()

    def spawn(self, name: str, role: str, *args: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, **{AGENT_URL: self.urls[name], ADMIN_URL: self.admin_url})
        return subprocess.Popen(
            [sys.executable, __file__, "--role", role, *args], cwd=ROOT, env=env
        )


# --- roles (run in child processes) -------------------------------------------------------------
async def foundation_producer(count: int) -> None:
    import redis.asyncio as aioredis

    from foundation_client import ClientSettings, Messaging

    admin = aioredis.Redis.from_url(os.environ[ADMIN_URL])
    settings = ClientSettings(agent_name=PRODUCER, redis_url=os.environ[AGENT_URL])
    async with Messaging(settings) as m:
        await admin.set("bench:start", repr(time.time()))  # after imports and set-up
        for start in range(0, count, BATCH):
            size = min(BATCH, count - start)
            await m.send_many([(CONSUMER, "tick", {"n": start + i}, None) for i in range(size)])
    await admin.aclose()


async def foundation_consumer(count: int, latency: bool) -> None:
    import redis.asyncio as aioredis

    from foundation_client import ClientSettings, Envelope, Messaging, MessagingConfig

    admin = aioredis.Redis.from_url(os.environ[ADMIN_URL])
    done = asyncio.Event()
    seen = 0
    delays: list[float] = []

    async def tick(envelope: Envelope) -> None:
        nonlocal seen
        seen += 1
        if latency:
            delays.append(time.time() - envelope.created_at)
        if seen >= count:
            done.set()

    config = MessagingConfig(batch=BATCH, block_ms=100)
    settings = ClientSettings(agent_name=CONSUMER, redis_url=os.environ[AGENT_URL])
    async with Messaging(settings, config=config) as m:
        m.on("tick", tick)
        stop = asyncio.Event()
        loop = asyncio.create_task(m.run(stop))
        await admin.set("bench:ready", "1")
        await done.wait()
        stop.set()
        await loop  # the last batch acknowledged
        acked = time.time()
    await admin.set("bench:done", repr(acked))
    if latency:
        await admin.set("bench:latency", json.dumps(delays))
    await admin.aclose()


def raw_producer(count: int) -> None:
    import redis

    r = redis.Redis.from_url(os.environ[ADMIN_URL])
    r.set("bench:start", repr(time.time()))
    for start in range(0, count, BATCH):
        pipe = r.pipeline(transaction=False)
        for i in range(min(BATCH, count - start)):
            pipe.xadd("bench:raw", {"n": str(start + i), "payload": '{"n":1}'})
        pipe.execute()


def raw_consumer(count: int) -> None:
    import redis

    r: Any = redis.Redis.from_url(os.environ[ADMIN_URL])
    seen = 0
    while seen < count:
        response = r.xreadgroup("g", "c", {"bench:raw": ">"}, count=BATCH, block=100)
        for _, entries in response or []:
            ids = [entry_id for entry_id, _ in entries]
            for _, fields in entries:
                json.loads(fields[b"payload"])
            r.xack("bench:raw", "g", *ids)
            seen += len(ids)
    r.set("bench:done", repr(time.time()))


async def steady_producer(count: int, rate: float) -> None:
    from foundation_client import ClientSettings, Messaging

    settings = ClientSettings(agent_name=PRODUCER, redis_url=os.environ[AGENT_URL])
    async with Messaging(settings) as m:
        started = time.monotonic()
        for i in range(count):
            target = started + i / rate
            pause = target - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            await m.send(CONSUMER, "tick", {"n": i})


# --- runs ---------------------------------------------------------------------------------------
def wait_for(r: Any, key: str, timeout: float) -> bytes:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = r.get(key)
        if value:
            return bytes(value)
        time.sleep(0.01)
    raise SystemExit(f"a benchmark run did not set {key} in time")


def wait_done(r: Any, timeout: float) -> float:
    """Seconds from the producer's first message to the consumer's last acknowledgement."""
    done = float(wait_for(r, "bench:done", timeout))
    return done - float(r.get("bench:start") or done)


def sql(query: str) -> int:
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        cursor = conn.execute(query)
        row = cursor.fetchone() if cursor.description else None
        return int(row[0]) if row and row[0] is not None else 0


def reset(agents: Agents) -> None:
    """An empty Redis database with the agents registered; an empty log; no cursors."""
    agents.admin.flushdb()
    agents.register()
    sql("TRUNCATE message_logs, message_log_cursors")


class RecorderProcess:
    """``manage.py messaging_recorder`` as deployed (its default batch and niceness, unless
    ``--recorder-nice`` says otherwise), ready once it has read the registry."""

    def __init__(self, nice: int | None) -> None:
        extra = [] if nice is None else ["--nice", str(nice)]
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "messaging_recorder", *extra],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.time() + 60
        while not sql("SELECT count(*) FROM message_log_cursors"):
            if time.time() > deadline or self.process.poll() is not None:
                self.stop()
                raise SystemExit("the recorder did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait()


def run_foundation(agents: Agents, count: int, recorder_nice: int | None) -> tuple[float, float]:
    """Messages a second, send to ack; and seconds from the last ack until the recorder has
    written both rows (sent, delivered) of every message."""
    r = agents.admin
    reset(agents)
    recorder = RecorderProcess(recorder_nice)
    try:
        consumer = agents.spawn(CONSUMER, "f-consumer", str(count))
        wait_for(r, "bench:ready", 60)
        producer = agents.spawn(PRODUCER, "f-producer", str(count))
        elapsed = wait_done(r, 300)
        acked = float(r.get("bench:done") or 0)
        producer.wait()
        consumer.wait()
        recorded = wait_logged(2 * count, acked)
    finally:
        recorder.stop()
    return count / elapsed, recorded


def wait_logged(rows: int, acked: float) -> float:
    """Seconds from ``acked`` until ``message_logs`` holds ``rows`` rows: counted every 50 ms on
    one connection (a connection a poll would cost PostgreSQL a backend's start-up each time)."""
    import psycopg

    deadline = time.time() + 300
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        while time.time() < deadline:
            row = conn.execute("SELECT count(*) FROM message_logs").fetchone()
            if row and int(row[0]) >= rows:
                return time.time() - acked
            time.sleep(0.05)
    raise SystemExit("the recorder did not log every message in time")


def run_raw(agents: Agents, count: int) -> float:
    r = agents.admin
    r.flushdb()
    r.xgroup_create("bench:raw", "g", id="0", mkstream=True)
    # The raw loop is no agent: it runs as the default user (the ACL users could not touch
    # bench:raw), started the same way as ours.
    consumer = agents.spawn(CONSUMER, "r-consumer", str(count))
    time.sleep(0.5)
    producer = agents.spawn(PRODUCER, "r-producer", str(count))
    elapsed = wait_done(r, 300)
    producer.wait()
    consumer.wait()
    return count / elapsed


def run_celery(url: str, count: int) -> float:
    import redis

    r = redis.Redis.from_url(url)
    r.flushdb()
    env = dict(os.environ, BENCH_CELERY_BROKER=url)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "benchmarks.celery_noop",
            "worker",
            "--pool",
            "prefork",
            "-c",
            "2",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        os.environ["BENCH_CELERY_BROKER"] = url
        from benchmarks.celery_noop import app, noop

        # Publish first, then time the drain alone (the workers start on a full queue).
        with app.producer_or_acquire() as producer:
            for _ in range(count):
                noop.apply_async(producer=producer)
        started = time.time()
        deadline = started + 600
        while time.time() < deadline:
            if int(r.get("bench:celery") or 0) >= count:
                return count / (time.time() - started)
            time.sleep(0.05)
        raise SystemExit("celery did not drain in time")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        r.flushdb()


def run_latency(
    agents: Agents, count: int, rate: float, recorder_nice: int | None, with_recorder: bool
) -> tuple[float, float]:
    r = agents.admin
    reset(agents)
    recorder = RecorderProcess(recorder_nice) if with_recorder else None
    try:
        consumer = agents.spawn(CONSUMER, "f-consumer", str(count), "--latency")
        wait_for(r, "bench:ready", 60)
        producer = agents.spawn(PRODUCER, "f-steady", str(count), str(rate))
        wait_done(r, 300)
        producer.wait()
        consumer.wait()
    finally:
        if recorder is not None:
            recorder.stop()
    delays = sorted(json.loads(r.get("bench:latency") or "[]"))
    p50 = statistics.median(delays) * 1000
    p99 = delays[int(len(delays) * 0.99) - 1] * 1000
    return p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role")
    parser.add_argument("args", nargs="*")
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--celery-tasks", type=int, default=20_000)
    parser.add_argument("--steady", type=int, default=5_000, help="messages at 1,000/s")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of ours and raw; medians")
    parser.add_argument(
        "--recorder-nice",
        type=int,
        default=None,
        help="the recorder's --nice (default: none given, so its own default, 10)",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL"),
        help="the PostgreSQL database to record into (created if missing; default $BENCH_PG_URL, "
        "else foundation_bench on the services' PostgreSQL, which runs with fsync off)",
    )
    parser.add_argument("--redis-db", type=int, default=3, help="the services' Redis database")
    options = parser.parse_args()
    if options.role:
        count = int(options.args[0])
        if options.role == "f-producer":
            asyncio.run(foundation_producer(count))
        elif options.role == "f-consumer":
            asyncio.run(foundation_consumer(count, options.latency))
        elif options.role == "f-steady":
            asyncio.run(steady_producer(count, float(options.args[1])))
        elif options.role == "r-producer":
            raw_producer(count)
        elif options.role == "r-consumer":
            raw_consumer(count)
        return
    url = load_services_env(redis_db=options.redis_db, database_url=options.pg_url)
    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    fsync = sql("SELECT CASE current_setting('fsync') WHEN 'on' THEN 1 ELSE 0 END")
    agents = Agents(url)
    agents.create()
    nice = options.recorder_nice
    try:
        # The machine is shared and noisy: alternate the two, several rounds, compare medians.
        ours: list[float] = []
        raws: list[float] = []
        lags: list[float] = []
        for _ in range(options.rounds):
            rate, lag = run_foundation(agents, options.messages, nice)
            ours.append(rate)
            lags.append(lag)
            raws.append(run_raw(agents, options.messages))
        foundation, raw = statistics.median(ours), statistics.median(raws)
        emit(
            "foundation_msgs_per_s",
            foundation,
            "msg/s",
            messages=options.messages,
            recorder=True,
            recorder_nice=10 if nice is None else nice,
            acl_users=True,
            pg_fsync=bool(fsync),
            rounds=[round(x) for x in ours],
        )
        emit(
            "recorder_lag_s",
            statistics.median(lags),
            "s",
            note="from the last ack until every message's sent and delivered rows are in "
            "message_logs",
            rounds=[round(x, 2) for x in lags],
        )
        emit(
            "raw_redis_msgs_per_s",
            raw,
            "msg/s",
            messages=options.messages,
            rounds=[round(x) for x in raws],
        )
        celery = run_celery(url, options.celery_tasks)
        emit(
            "celery_tasks_per_s", celery, "task/s", tasks=options.celery_tasks, pool="prefork", c=2
        )
        emit("foundation_vs_raw_ratio", foundation / raw, "x", target=">= 0.5")
        emit("foundation_vs_celery_ratio", foundation / celery, "x", target=">= 20")
        p50, p99 = run_latency(agents, options.steady, 1000.0, nice, with_recorder=True)
        emit("latency_p50_ms", p50, "ms", rate="1000/s", messages=options.steady, recorder=True)
        emit("latency_p99_ms", p99, "ms", rate="1000/s", recorder=True, target="<= 5")
        p50, p99 = run_latency(agents, options.steady, 1000.0, nice, with_recorder=False)
        emit("latency_p50_no_recorder_ms", p50, "ms", rate="1000/s", recorder=False)
        emit("latency_p99_no_recorder_ms", p99, "ms", rate="1000/s", recorder=False)
    finally:
        agents.delete()


if __name__ == "__main__":
    main()
