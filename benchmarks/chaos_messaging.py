"""Chaos run: messages are neither lost nor left unaccounted while consumers and Redis are killed.

    .venv/bin/python benchmarks/chaos_messaging.py [--messages 20000] [--kills 12] [--cluster]

Starts a Redis of its own (``appendonly yes``, ``appendfsync always``) on a free port, or with
``--cluster`` a 3-master Redis Cluster of its own, three consumer processes of one agent, and
sends N messages in batches. Meanwhile consumers are SIGKILLed at random moments and restarted at
once (at least ``--kills`` times), and Redis itself (on a cluster, one master) is SIGKILLed once
and restarted at once.

A message counts as handled once its handler has returned successfully: a handler that fails
(now and then, on purpose) raises before it counts, so a message lost on the retry path or in a
redelivery would show as lost. The producer sends a batch again, same ids, when Redis did not
confirm it; those copies are counted apart (``resent``), so ``duplicates`` are deliveries of one
copy more than once (a consumer killed between handling and acknowledging).

Last line: ``sent=N handled=H dead=D lost=L duplicates=X resent=R``; the exit status is 0 only
when L = 0 and every kill happened.
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
PRODUCER = "chaos-producer"
HANDLED = "chaos:handled"


class RedisServer:
    """One redis-server of the run's own, durable (AOF, fsync always)."""

    def __init__(self, folder: Path, port: int, *, cluster: bool = False) -> None:
        self.folder, self.port, self.cluster = folder, port, cluster
        # A cluster node's bus port is its port + 10000 unless given: past 55535 that does not
        # exist, and in the ephemeral range it may be taken. Another free port, then.
        self.bus_port = free_port() if cluster else 0
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        extra = (
            [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.folder / "nodes.conf"),
                "--cluster-port",
                str(self.bus_port),
            ]
            if self.cluster
            else []
        )
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
                *extra,
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
        self.kill()
        raise SystemExit(f"redis did not start on port {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def start_servers(folder: Path, cluster: bool) -> tuple[list[RedisServer], str]:
    """The servers and the URL agents use."""
    if not cluster:
        server = RedisServer(folder, free_port())
        server.start()
        return [server], f"redis://127.0.0.1:{server.port}/0"
    servers = [RedisServer(folder / str(i), free_port(), cluster=True) for i in range(3)]
    try:
        for server in servers:
            server.start()
    except SystemExit:
        for server in servers:
            server.kill()
        raise
    subprocess.run(
        [
            "/usr/bin/redis-cli",
            "--cluster",
            "create",
            *(f"127.0.0.1:{s.port}" for s in servers),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    import redis

    deadline = time.monotonic() + 30
    while b"cluster_state:ok" not in redis.Redis(port=servers[0].port).execute_command(
        "CLUSTER", "INFO"
    ):
        if time.monotonic() > deadline:
            raise SystemExit("the cluster did not form")
        time.sleep(0.1)
    return servers, f"redis+cluster://127.0.0.1:{servers[0].port}"


def consumer_main(url: str) -> None:
    from foundation_client import ClientSettings, Envelope, Messaging, MessagingConfig

    async def main() -> None:
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
                if random.random() < 0.002:  # a few handlers fail now and then: retried
                    raise RuntimeError("transient failure")
                # The last step: counted only when the handler returns successfully.
                await m._redis.hincrby(HANDLED, envelope.id, 1)

            m.on("job", handle)
            await m.run()

    asyncio.run(main())


def produce(url: str, total: int, progress: list[int]) -> tuple[list[str], dict[str, int]]:
    """Send ``total`` messages in batches of 100; returns their ids and, for each, how many
    copies may have reached Redis (a batch sent again after an unconfirmed write)."""
    import redis

    from foundation_client import ClientSettings, Messaging

    sent: list[str] = []
    copies: dict[str, int] = {}

    async def main() -> None:
        async with Messaging(ClientSettings(agent_name=PRODUCER, redis_url=url)) as m:
            for start in range(0, total, 100):
                envelopes = [
                    m._envelope(AGENT, "job", {"n": start + i}, None)
                    for i in range(min(100, total - start))
                ]
                while True:  # the same envelopes (same ids) until Redis has taken them
                    for envelope in envelopes:
                        copies[envelope.id] = copies.get(envelope.id, 0) + 1
                    try:
                        await m._write(envelopes)
                        break
                    except (redis.RedisError, OSError):
                        await asyncio.sleep(0.1)
                sent.extend(e.id for e in envelopes)
                progress[0] = len(sent)
                await asyncio.sleep(0.01)  # a steady stream, so the chaos lands mid-flow

    asyncio.run(main())
    return sent, copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role")
    parser.add_argument("--url")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--consumers", type=int, default=3)
    parser.add_argument("--cluster", action="store_true", help="a 3-master Redis Cluster")
    options = parser.parse_args()
    if options.role == "consumer":
        consumer_main(options.url)
        return
    if not shutil.which("/usr/bin/redis-server"):
        raise SystemExit("/usr/bin/redis-server is missing: apt-get install -y redis-server")

    folder = Path(tempfile.mkdtemp(prefix="foundation-chaos-"))
    servers, url = start_servers(folder, options.cluster)
    from foundation_client.protocol import AGENTS, DeadLetter, dead_letters
    from foundation_client.testing import sync_client

    sync_client(url).sadd(AGENTS, AGENT, PRODUCER)  # registered, as the site does

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
                server = rng.choice(servers)
                server.kill()
                server.start()
                kills["redis"] += 1
                redis_killed = True
                print(f"killed and restarted redis :{server.port} at {progress[0]} sent")

    chaos_thread = threading.Thread(target=chaos)
    chaos_thread.start()
    started = time.monotonic()
    sent, copies = produce(url, options.messages, progress)
    done.set()
    chaos_thread.join()
    print(
        f"sent {len(sent)} in {time.monotonic() - started:.1f}s; "
        f"{kills['consumers']} consumer kills, {kills['redis']} redis kill",
        flush=True,
    )
    r: Any = sync_client(url)
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
    resent = sum(copies[m] - 1 for m in sent_set)
    duplicates = sum(max(0, handled[m] - copies[m]) for m in handled_ids)
    for server in servers:
        server.kill()
    shutil.rmtree(folder, ignore_errors=True)
    print(
        f"sent={len(sent_set)} handled={len(handled_ids)} dead={len(dead_ids)} "
        f"lost={lost} duplicates={duplicates} resent={resent}",
        flush=True,
    )
    sys.exit(0 if lost == 0 and kills["consumers"] >= options.kills and kills["redis"] == 1 else 1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
