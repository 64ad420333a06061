"""Messaging beside its baselines, in one run, on one Redis.

    scripts/services start && .venv/bin/python benchmarks/messaging.py [--messages 50000]

Prints one JSON line per figure:
- ``foundation_msgs_per_s``: send -> handler -> ack for N small messages, a producer process
  (``send_many`` by 500) and a consumer process (``Messaging.run``, batches of 500), with the
  recorder (``manage.py messaging_recorder``, at its default niceness 10) running against
  PostgreSQL; the median of several rounds, alternated with the raw loop's;
- ``recorder_lag_s``: from the last acknowledgement until every message's two rows are logged;
- ``raw_redis_msgs_per_s``: the same two processes written directly with redis-py (XADD
  pipelined by 500, XREADGROUP COUNT 500, XACK), no envelope, no events;
- ``celery_tasks_per_s``: Celery 5 on the same Redis draining 20,000 no-op tasks (prefork, -c 2);
- the ratios, and send -> handler latency p50/p99 at a steady 1,000 msg/s.
Each run uses a Redis database of its own (the services' database 3), emptied first.
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


def spawn(role: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--role", role, *args], cwd=ROOT)


# --- roles (run in child processes) -------------------------------------------------------------
async def foundation_producer(url: str, count: int) -> None:
    from foundation_client import ClientSettings, Messaging

    async with Messaging(ClientSettings(agent_name="bench-producer", redis_url=url)) as m:
        await m._redis.set("bench:start", repr(time.time()))  # after imports and set-up
        for start in range(0, count, BATCH):
            size = min(BATCH, count - start)
            await m.send_many(
                [("bench-consumer", "tick", {"n": start + i}, None) for i in range(size)]
            )


async def foundation_consumer(url: str, count: int, latency: bool) -> None:
    import redis.asyncio as aioredis

    from foundation_client import ClientSettings, Envelope, Messaging, MessagingConfig

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
    async with Messaging(
        ClientSettings(agent_name="bench-consumer", redis_url=url), config=config
    ) as m:
        m.on("tick", tick)
        stop = asyncio.Event()
        loop = asyncio.create_task(m.run(stop))
        await done.wait()
        stop.set()
        await loop
    r = aioredis.Redis.from_url(url)
    await r.set("bench:done", repr(time.time()))
    if latency:
        await r.set("bench:latency", json.dumps(delays))
    await r.aclose()


def raw_producer(url: str, count: int) -> None:
    import redis

    r = redis.Redis.from_url(url)
    r.set("bench:start", repr(time.time()))
    for start in range(0, count, BATCH):
        pipe = r.pipeline(transaction=False)
        for i in range(min(BATCH, count - start)):
            pipe.xadd("bench:raw", {"n": str(start + i), "payload": '{"n":1}'})
        pipe.execute()


def raw_consumer(url: str, count: int) -> None:
    import redis

    r: Any = redis.Redis.from_url(url)
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


async def steady_producer(url: str, count: int, rate: float) -> None:
    from foundation_client import ClientSettings, Messaging

    async with Messaging(ClientSettings(agent_name="bench-producer", redis_url=url)) as m:
        started = time.monotonic()
        for i in range(count):
            target = started + i / rate
            pause = target - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            await m.send("bench-consumer", "tick", {"n": i})


# --- runs ---------------------------------------------------------------------------------------
def wait_done(r: object, timeout: float) -> float:
    """Seconds from the producer's first message to the consumer's last acknowledgement."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = r.get("bench:done")  # type: ignore[attr-defined]
        if value:
            return float(value) - float(r.get("bench:start") or value)  # type: ignore[attr-defined]
        time.sleep(0.01)
    raise SystemExit("a benchmark run did not finish in time")


def logged_rows() -> int:
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        row = conn.execute("SELECT count(*) FROM message_logs").fetchone()
        return int(row[0]) if row else 0


def run_foundation(url: str, count: int, recorder_nice: int) -> tuple[float, float]:
    """Messages a second, send to ack; and seconds from the last ack until the recorder has
    written both rows (sent, delivered) of every message."""
    import psycopg
    import redis

    r = redis.Redis.from_url(url)
    r.flushdb()
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        conn.execute("TRUNCATE message_logs, message_log_events")
    recorder = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "messaging_recorder",
            "--batch",
            "200",
            "--nice",
            str(recorder_nice),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    consumer = spawn("f-consumer", url, str(count))
    time.sleep(1.5)  # the consumer has created its group
    producer = spawn("f-producer", url, str(count))
    elapsed = wait_done(r, 300)
    acked = float(r.get("bench:done") or 0)
    producer.wait()
    consumer.wait()
    deadline = time.time() + 300
    while logged_rows() < 2 * count and time.time() < deadline:
        time.sleep(0.05)
    recorded = time.time() - acked
    recorder.terminate()
    recorder.wait()
    return count / elapsed, recorded


def run_raw(url: str, count: int) -> float:
    import redis

    r = redis.Redis.from_url(url)
    r.flushdb()
    r.xgroup_create("bench:raw", "g", id="0", mkstream=True)
    consumer = spawn("r-consumer", url, str(count))
    time.sleep(0.5)
    producer = spawn("r-producer", url, str(count))
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


def run_latency(url: str, count: int, rate: float) -> tuple[float, float]:
    import redis

    r = redis.Redis.from_url(url)
    r.flushdb()
    consumer = spawn("f-consumer", url, str(count), "--latency")
    time.sleep(1.5)
    producer = spawn("f-steady", url, str(count), str(rate))
    wait_done(r, 300)
    producer.wait()
    consumer.wait()
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
        "--recorder-nice", type=int, default=10, help="the recorder's --nice (10 is its default)"
    )
    options = parser.parse_args()
    if options.role:
        url, count = options.args[0], int(options.args[1])
        if options.role == "f-producer":
            asyncio.run(foundation_producer(url, count))
        elif options.role == "f-consumer":
            asyncio.run(foundation_consumer(url, count, options.latency))
        elif options.role == "f-steady":
            asyncio.run(steady_producer(url, count, float(options.args[2])))
        elif options.role == "r-producer":
            raw_producer(url, count)
        elif options.role == "r-consumer":
            raw_consumer(url, count)
        return
    url = load_services_env(redis_db=3)
    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # The machine is shared and noisy: alternate the two, several rounds, and compare medians.
    ours: list[float] = []
    raws: list[float] = []
    lags: list[float] = []
    for _ in range(options.rounds):
        rate, lag = run_foundation(url, options.messages, options.recorder_nice)
        ours.append(rate)
        lags.append(lag)
        raws.append(run_raw(url, options.messages))
    foundation, raw = statistics.median(ours), statistics.median(raws)
    emit(
        "foundation_msgs_per_s",
        foundation,
        "msg/s",
        messages=options.messages,
        recorder=True,
        recorder_nice=options.recorder_nice,
        rounds=[round(x) for x in ours],
    )
    emit(
        "recorder_lag_s",
        statistics.median(lags),
        "s",
        note="from the last ack until every message's sent and delivered rows are in message_logs",
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
    emit("celery_tasks_per_s", celery, "task/s", tasks=options.celery_tasks, pool="prefork", c=2)
    emit("foundation_vs_raw_ratio", foundation / raw, "x", target=">= 0.5")
    emit("foundation_vs_celery_ratio", foundation / celery, "x", target=">= 20")
    p50, p99 = run_latency(url, options.steady, 1000.0)
    emit("latency_p50_ms", p50, "ms", rate="1000/s", messages=options.steady)
    emit("latency_p99_ms", p99, "ms", rate="1000/s", target="<= 5")


if __name__ == "__main__":
    main()
