"""Secrets hot paths beside their baseline, in one run, on the same OpenBao.

    scripts/services start && .venv/bin/python benchmarks/secrets_read.py [--reads 500] \
        [--pg-url postgres://postgres@127.0.0.1:27433/foundation_bench]

Prints one JSON line per figure:
- ``cached_get_us``: median of ``SecretsClient.get`` for a fresh cached value;
- ``uncached_get_ms``: median of ``get`` with no client cache: HTTP to the site (Uvicorn, as in
  production), token check, grant check, the value (from the site's version cache once read from
  OpenBao), audit row, answer;
- ``direct_hvac_read_ms``: median of a KV v2 read through hvac against the same OpenBao, taken
  in batches alternating with the agent's reads (``ROUNDS``), so that a noisy moment on a
  shared machine weighs on both sides of each ratio alike;
- ``uncached_vs_hvac_ratio``: the two above divided; each of the three site runs has its own
  hvac reads (``direct_hvac_read_site_cache_off_run_ms``, ``direct_hvac_read_again_ms``), and
  each ratio divides by its own run's;
- ``uncached_get_site_cache_off_ms`` and its ratio: the same with the site's in-process version
  cache off (``SECRETS_SITE_CACHE_SECONDS=0``), so that every read also reads OpenBao;
- ``uncached_all_ms`` and ``uncached_all_vs_hvac_ratio``: every cache off, the agent token
  cache too (``AGENT_AUTH_CACHE_SECONDS=0``): each read checks the token and the grants in
  PostgreSQL, reads OpenBao, and commits its audit row. This is the honest figure;
- ``reads_audited``: the benchmark agent's audit rows of successful reads written during the
  run, beside the number of reads that reached the site.

The site runs as deployed (``DEBUG`` off; plain HTTP on loopback, as behind a TLS proxy), and
the agent pins the site's key, so that every uncached answer is verified.

The site runs on PostgreSQL (database ``foundation_bench`` on the services' server, or
``--pg-url``) with the services' Redis and OpenBao. Measure with a PostgreSQL as durable as in
production (``fsync`` and ``synchronous_commit`` on): the test cluster runs with ``fsync`` off,
which flatters every commit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import emit, ensure_database, free_port, load_services_env  # noqa: E402


def prepare() -> str:
    """Migrate, then (re)create the secret and an agent; return the agent's token. The agent
    pins the site's key, as ``create_agent`` tells it to: every uncached read is verified."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from agents_app.models import Agent
    from secrets_app import services
    from secrets_app.grants import create_agent
    from secrets_app.models import SecretMetadata

    for secret in SecretMetadata.objects.filter(secret_name="bench_secret"):
        services.delete_secret(secret, actor="benchmark")
    Agent.objects.filter(name="bench_agent").delete()
    services.create_secret(
        "bench_secret", "bench-value-" + "x" * 40, actor="benchmark", backend="vault"
    )
    _, credentials = create_agent("bench_agent", actor="benchmark", grants=["bench_secret"])
    token = credentials.token
    return token


def report_durability() -> None:
    """Print the database's durability settings beside the figures they shape."""
    from django.db import connection

    with connection.cursor() as cursor:
        settings = {}
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            cursor.execute(f"SHOW {name}")  # nosec B608 - a fixed list of setting names
            settings[name] = cursor.fetchone()[0]
    print(json.dumps({"postgresql": settings}), flush=True)


def count_read_rows() -> int:
    """The audit rows of the benchmark agent's successful reads."""
    from audit_app.models import AuditLog

    return AuditLog.objects.filter(
        event_type="secrets.read", actor="bench_agent", success=True
    ).count()


def expected_reads(reads: int) -> int:
    """Reads that reach the site: three sites, each ``reads`` plus 20 warm-up reads by the
    uncached client and one by the cached client."""
    return 3 * (reads + 21)


def start_site(
    port: int, site_cache: bool = True, auth_cache: bool = True
) -> subprocess.Popen[bytes]:
    # As deployed: DEBUG off (with it on, Django records and formats every query: 0.2 ms a
    # query here), plain HTTP on loopback as behind a TLS-terminating proxy.
    env = dict(
        os.environ,
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        SECRETS_SITE_CACHE_SECONDS="300" if site_cache else "0",
        AGENT_AUTH_CACHE_SECONDS="5" if auth_cache else "0",
    )
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "uvicorn"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--lifespan",
            "on",
            "--log-level",
            "warning",
            "foundation_site.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    sys.exit("the site did not start")


class DirectHvac:
    """The baseline: KV v2 reads through hvac against the same OpenBao, one client kept."""

    def __init__(self) -> None:
        import hvac
        from django.conf import settings

        self.client = hvac.Client(url=settings.VAULT_ADDR, token=settings.VAULT_TOKEN)
        self.path = f"{settings.SECRETS_VAULT_PREFIX}/bench_secret"
        self.mount = settings.SECRETS_VAULT_MOUNT
        self.reads(20)  # warm-up

    def reads(self, count: int) -> list[float]:
        timings = []
        for _ in range(count):
            started = time.perf_counter()
            self.client.secrets.kv.v2.read_secret_version(
                path=self.path, mount_point=self.mount, raise_on_deleted_version=True
            )
            timings.append(time.perf_counter() - started)
        return timings


#: Reads are taken in this many alternating batches, the agent's then hvac's, so that a noisy
#: moment on a shared machine weighs on both sides of a ratio alike.
ROUNDS = 10


async def through_client(
    port: int, token: str, reads: int, hvac: DirectHvac
) -> tuple[list[float], list[float], list[float]]:
    """The agent's uncached reads and hvac's, in alternating batches; then cached reads."""
    from foundation_client import ClientSettings, SecretsClient
    from foundation_core.signing import site_public_key

    settings = ClientSettings(
        agent_name="bench_agent",
        api_url=f"http://127.0.0.1:{port}",
        redis_url=os.environ["REDIS_URL"],
        agent_token=token,
        site_public_key=site_public_key(),
    )
    uncached: list[float] = []
    direct: list[float] = []
    batch = max(1, reads // ROUNDS)
    async with SecretsClient(settings, ttl=0, stale_if_error=0, listen=False) as client:
        for _ in range(20):  # warm-up
            await client.get("bench_secret")
        while len(uncached) < reads:
            this_batch = min(batch, reads - len(uncached))
            for _ in range(this_batch):
                started = time.perf_counter()
                await client.get("bench_secret")
                uncached.append(time.perf_counter() - started)
            direct += hvac.reads(this_batch)  # blocking: nothing else runs on this loop meanwhile
    cached: list[float] = []
    async with SecretsClient(settings, ttl=3600, listen=False) as client:
        await client.get("bench_secret")
        batch = 1000
        for _ in range(200):
            started = time.perf_counter()
            for _ in range(batch):
                await client.get("bench_secret")
            cached.append((time.perf_counter() - started) / batch)
    return uncached, direct, cached


@contextlib.contextmanager
def running_site(site_cache: bool = True, auth_cache: bool = True) -> Iterator[int]:
    """A site of its own (``start_site``) for the block; its port."""
    port = free_port()
    site = start_site(port, site_cache=site_cache, auth_cache=auth_cache)
    try:
        yield port
    finally:
        site.terminate()
        site.wait(timeout=10)


def emit_ms(figure: str, timings: list[float], p90: bool = False) -> float:
    """Print the median of ``timings`` (seconds) in ms, the 90th centile with it if asked;
    return the median."""
    median = statistics.median(timings) * 1e3
    extra = {"p90": round(statistics.quantiles(timings, n=10)[-1] * 1e3, 3)} if p90 else {}
    emit(figure, median, "ms", samples=len(timings), **extra)
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=500)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL"),
        help="the site's database (default: foundation_bench on the services' PostgreSQL)",
    )
    args = parser.parse_args()
    load_services_env(redis_db=2, database_url=args.pg_url)
    ensure_database()
    token = prepare()
    report_durability()
    rows_before = count_read_rows()
    hvac = DirectHvac()
    with running_site() as port:
        uncached, hvac_reads, cached = asyncio.run(through_client(port, token, args.reads, hvac))
    # The same, with the site's version cache off: every read also goes to OpenBao.
    with running_site(site_cache=False) as port:
        no_site_cache, hvac_vault, _ = asyncio.run(through_client(port, token, args.reads, hvac))
    # Every cache off: the token and grants from PostgreSQL, the value from OpenBao. Each
    # ratio divides by the hvac reads taken between its own batches.
    with running_site(site_cache=False, auth_cache=False) as port:
        nothing_cached, hvac_again, _ = asyncio.run(through_client(port, token, args.reads, hvac))
    emit("cached_get_us", statistics.median(cached) * 1e6, "us", target="<= 1", samples=len(cached))
    uncached_ms = emit_ms("uncached_get_ms", uncached, p90=True)
    hvac_ms = emit_ms("direct_hvac_read_ms", hvac_reads)
    emit("uncached_vs_hvac_ratio", uncached_ms / hvac_ms, "x", target="<= 1.5")
    vault_ms = emit_ms("uncached_get_site_cache_off_ms", no_site_cache)
    hvac_vault_ms = emit_ms("direct_hvac_read_site_cache_off_run_ms", hvac_vault)
    emit("uncached_site_cache_off_vs_hvac_ratio", vault_ms / hvac_vault_ms, "x")
    all_ms = emit_ms("uncached_all_ms", nothing_cached, p90=True)
    hvac_again_ms = emit_ms("direct_hvac_read_again_ms", hvac_again)
    emit("uncached_all_vs_hvac_ratio", all_ms / hvac_again_ms, "x", target="<= 2.5")
    audited = count_read_rows() - rows_before
    emit("reads_audited", audited, "rows", expected=expected_reads(args.reads))


if __name__ == "__main__":
    main()
