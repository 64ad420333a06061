"""The Celery app benchmarks/messaging.py drains: one no-op task counting itself in Redis."""

from __future__ import annotations

import os

import redis
from celery import Celery

BROKER = os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/3")
app = Celery("bench", broker=BROKER)
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=4, broker_pool_limit=4)
_counter = redis.Redis.from_url(BROKER)


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop() -> None:
    _counter.incr("bench:celery")
