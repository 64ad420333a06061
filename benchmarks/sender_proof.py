"""What proving a message's sender costs, two ways, measured side by side.

    .venv/bin/python benchmarks/sender_proof.py [--messages 20000]

1. Per-agent signing keys: Ed25519 signs each envelope, the receiver verifies it (the only
   asymmetric choice that lets receivers check without holding a secret that can forge).
2. What protocol 2 does instead: one inbox stream per (receiver, sender), appendable only by the
   sender's ACL user; the receiver reads all its inboxes in one XREADGROUP. Its cost is the
   number of streams per read: one consumer draining 20,000 messages from one busy inbox while
   it also watches 0, 9 or 49 idle ones (11 or 51 registered agents).

Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import emit, load_services_env  # noqa: E402


def signing(messages: int) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from foundation_client import Envelope

    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    bodies = [
        Envelope("a", "b", "job", {"n": i, "text": "x" * 200}).to_json() for i in range(messages)
    ]
    started = time.perf_counter()
    signatures = [key.sign(body) for body in bodies]
    signed = time.perf_counter()
    for body, signature in zip(bodies, signatures, strict=True):
        public.verify(signature, body)
    verified = time.perf_counter()
    emit("ed25519_sign_us", (signed - started) / messages * 1e6, "µs/message")
    emit("ed25519_verify_us", (verified - signed) / messages * 1e6, "µs/message")


def streams(url: str, messages: int) -> None:
    import redis

    from foundation_client.protocol import GROUP, inbox

    r: Any = redis.Redis.from_url(url)
    results: dict[int, list[float]] = {}
    for _ in range(3):
        for idle in (0, 9, 49):
            receiver = f"rx-{uuid.uuid4().hex[:8]}"
            keys = [inbox(receiver, f"s{i}") for i in range(idle + 1)]
            for key in keys:
                r.xgroup_create(key, GROUP, id="0", mkstream=True)
            pipe = r.pipeline(transaction=False)
            for i in range(messages):
                pipe.xadd(keys[0], {"e": b'{"n":%d}' % i})
            pipe.execute()
            started = time.perf_counter()
            got = 0
            while got < messages:
                reply = r.xreadgroup(GROUP, "c", dict.fromkeys(keys, ">"), count=100)
                entries = [(k, e) for k, batch in reply for e, _ in batch]
                got += len(entries)
                r.xack(keys[0], GROUP, *[e for _, e in entries])
            results.setdefault(idle, []).append(messages / (time.perf_counter() - started))
            r.delete(*keys)
    base = statistics.median(results[0])
    for idle, rates in results.items():
        emit(
            "xreadgroup_drain_rate",
            statistics.median(rates),
            "msg/s",
            streams_per_read=idle + 1,
            vs_one_stream=round(statistics.median(rates) / base, 3),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    options = parser.parse_args()
    url = load_services_env(redis_db=6)
    signing(options.messages)
    streams(url, options.messages)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
