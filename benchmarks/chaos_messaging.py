"""Chaos run: messages are neither lost nor left unaccounted while consumers and Redis are killed.

    .venv/bin/python benchmarks/chaos_messaging.py [--messages 20000] [--kills 12]

Starts a Redis of its own (``appendonly yes``, ``appendfsync always``) on a free port, three
consumer processes of one agent, and sends N messages in batches. Meanwhile consumers are
SIGKILLed at random moments and restarted at once (at least ``--kills`` times), and Redis itself
is SIGKILLed once and restarted at once. Handlers count each message id they handle in a hash.
Last line: ``sent=N handled=H dead=D lost=L duplicates=X``; the exit status is 0 only when
L = 0 and every message was handled or dead-lettered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import free_port  # noqa: E402

AGENT = "chaos"
HANDLED = "chaos:handled"


class RedisServer:
    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "/usr/bin/redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--aof-load-truncated",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise SystemExit("redis did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def consumer_main(url: str) -> None:
    import redis.asyncio as aioredis

    from foundation_client import ClientSettings, Envelope, Messaging, MessagingConfig

    async def main() -> None:
        counter = aioredis.Redis.from_url(url)
        config = MessagingConfig(
            visibility_timeout=1.0,
            max_attempts=50,
            batch=100,
            block_ms=200,
            backoff_base=0.05,
            backoff_max=0.5,
        )
        async with Messaging(ClientSettings(agent_name=AGENT, redis_url=url), config=config) as m:

            async def handle(envelope: Envelope) -> None:
                await counter.hincrby(HANDLED, envelope.id, 1)
                if random.random() < 0.002:  # a few handlers fail now and then: retried
                    raise RuntimeError("transient failure")

            m.on("job", handle)
            await m.run()

    asyncio.run(main())


def produce(url: str, total: int, progress: list[int]) -> list[str]:
    import redis

    from foundation_client import ClientSettings, Messaging

    sent: list[str] = []

    async def main() -> None:
        async with Messaging(ClientSettings(agent_name="chaos-producer", redis_url=url)) as m:
            for start in range(0, total, 100):
                envelopes = [
                    m._envelope(AGENT, "job", {"n": start + i}, None)
                    for i in range(min(100, total - start))
                ]
                while True:  # the same envelopes (same ids) until Redis has taken them
                    try:
                        await m._write(envelopes)
                        break
                    except (redis.RedisError, OSError):
                        await asyncio.sleep(0.1)
                sent.extend(e.id for e in envelopes)
                progress[0] = len(sent)
                await asyncio.sleep(0.01)  # a steady stream, so the chaos lands mid-flow

    asyncio.run(main())
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role")
    parser.add_argument("--url")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--consumers", type=int, default=3)
    options = parser.parse_args()
    if options.role == "consumer":
        consumer_main(options.url)
        return
    if not shutil.which("/usr/bin/redis-server"):
        raise SystemExit("/usr/bin/redis-server is missing: apt-get install -y redis-server")

    folder = Path(tempfile.mkdtemp(prefix="foundation-chaos-"))
    server = RedisServer(folder, free_port())
    server.start()
    import redis as sync_redis

    from foundation_client.protocol import AGENTS

    sync_redis.Redis(port=server.port).sadd(AGENTS, AGENT, "chaos-producer")  # as the site does
    url = f"redis://127.0.0.1:{server.port}/0"

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, __file__, "--role", "consumer", "--url", url], cwd=ROOT
        )

    consumers = [spawn() for _ in range(options.consumers)]
    time.sleep(2)  # groups exist
    progress = [0]
    kills = {"consumers": 0, "redis": 0}
    done = threading.Event()

    def chaos() -> None:
        rng = random.Random(7)
        redis_killed = False
        while not done.is_set() or kills["consumers"] < options.kills:
            time.sleep(rng.uniform(0.2, 0.6))
            victim = rng.randrange(len(consumers))
            consumers[victim].send_signal(signal.SIGKILL)
            consumers[victim].wait()
            consumers[victim] = spawn()
            kills["consumers"] += 1
            if not redis_killed and progress[0] >= options.messages * 0.4:
                server.kill()
                server.start()
                kills["redis"] += 1
                redis_killed = True
                print(f"killed and restarted redis at {progress[0]} sent", flush=True)

    chaos_thread = threading.Thread(target=chaos)
    chaos_thread.start()
    started = time.monotonic()
    sent = produce(url, options.messages, progress)
    done.set()
    chaos_thread.join()
    print(
        f"sent {len(sent)} in {time.monotonic() - started:.1f}s; "
        f"{kills['consumers']} consumer kills, {kills['redis']} redis kill",
        flush=True,
    )

    import redis

    r: Any = redis.Redis(port=server.port)
    from foundation_client.protocol import DeadLetter, dead_letters

    deadline = time.monotonic() + 180
    while True:
        handled = {k.decode(): int(v) for k, v in r.hgetall(HANDLED).items()}
        letters = [DeadLetter.decode(i, f) for i, f in r.xrange(dead_letters(AGENT))]
        dead = {letter.envelope.id for letter in letters if letter.envelope is not None}
        accounted = sum(1 for m in sent if m in handled or m in dead)
        if accounted == len(sent) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for process in consumers:
        process.send_signal(signal.SIGTERM)
    for process in consumers:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
    sent_set = set(sent)
    handled_ids = sent_set & set(handled)
    dead_ids = (sent_set & dead) - handled_ids
    lost = len(sent_set) - len(handled_ids) - len(dead_ids)
    duplicates = sum(count - 1 for m, count in handled.items() if m in sent_set)
    server.kill()
    shutil.rmtree(folder, ignore_errors=True)
    print(
        f"sent={len(sent_set)} handled={len(handled_ids)} dead={len(dead_ids)} "
        f"lost={lost} duplicates={duplicates}",
        flush=True,
    )
    sys.exit(0 if lost == 0 and kills["consumers"] >= options.kills and kills["redis"] == 1 else 1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
