"""What every benchmark script needs: the services' environment, a database of its own, a free
port, and one JSON line per figure."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "foundation_bench"


def load_services_env(
    redis_db: int, database: str = BENCH_DATABASE, database_url: str | None = None
) -> str:
    """Read ``.run/services.env`` (the run folder is ``FOUNDATION_RUN_DIR`` when set, as for
    ``scripts/services``) and point the site at the benchmark database (``database`` on the
    services' PostgreSQL, or ``database_url``) and at Redis database ``redis_db``; return that
    Redis URL. Variables already set win over the file's."""
    env_file = Path(os.environ.get("FOUNDATION_RUN_DIR") or ROOT / ".run") / "services.env"
    if not env_file.exists():
        sys.exit("start the services first: scripts/services start")
    for line in env_file.read_text().splitlines():
        key, _, value = line.partition("=")
        os.environ.setdefault(key, value)
    url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + f"/{redis_db}"
    os.environ["REDIS_URL"] = url
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        pg = os.environ["FOUNDATION_PG_URL"].rsplit("/", 1)[0]
        os.environ["DATABASE_URL"] = f"{pg}/{database}"
    os.environ.setdefault("DEBUG", "true")
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["FOUNDATION_ENV_FILE"] = ""
    os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 60)
    os.environ.setdefault("FOUNDATION_MASTER_KEY", "A" * 43 + "=")
    os.environ.setdefault("FOUNDATION_SITE_SIGNING_KEY", "B" * 43 + "=")
    os.environ["DJANGO_SETTINGS_MODULE"] = "foundation_site.settings"
    return url


def ensure_database(name: str | None = None) -> None:
    """Create the database ``DATABASE_URL`` names (or ``name`` on its server) unless it is
    there."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(os.environ["DATABASE_URL"])
    name = name or parts.path.lstrip("/")
    server = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if not found.fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def emit(figure: str, value: float, unit: str, **extra: object) -> None:
    print(
        json.dumps({"figure": figure, "value": round(value, 4), "unit": unit, **extra}), flush=True
    )
