"""A canary secret value, once created, read, rotated and rolled back, appears nowhere it must not:
not in any database table, Redis key or stream, RQ job, log line, or admin page."""

from __future__ import annotations

import contextlib
import logging
import uuid
import zlib
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from audit_app.models import AuditLog
from foundation_client import generate_keypair
from foundation_client.protocol import sealing_context
from foundation_client.protocol.sealing import open_sealed
from foundation_core.redis_client import get_redis
from secrets_app.jobs import rotate_due_secrets
from secrets_app.models import SecretMetadata

pytestmark = pytest.mark.django_db


def database_dump():
    text, raw = [], []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor, include_views=True):
            # Names from the database's own introspection, never input.
            cursor.execute(f'SELECT * FROM "{table}"')  # nosec B608
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview | bytearray):
                        raw.append(bytes(value))
                    else:
                        text.append(str(value))
    return "\n".join(text), b"\n".join(raw)


def redis_dump():
    """Every key of every database, by type; RQ's compressed job payloads decompressed too."""
    chunks: list[bytes] = []
    client = get_redis()
    keyspace = client.info("keyspace")
    for db_name in keyspace:
        base = settings.REDIS_URL.rsplit("/", 1)[0]
        conn = redis.Redis.from_url(f"{base}/{int(db_name[2:])}")
        for key in conn.scan_iter(count=1000):
            chunks.append(key)
            kind = conn.type(key)
            if kind == b"string":
                values = [conn.get(key)]
            elif kind == b"hash":
                values = [item for pair in conn.hgetall(key).items() for item in pair]
            elif kind == b"list":
                values = conn.lrange(key, 0, -1)
            elif kind == b"set":
                values = list(conn.smembers(key))
            elif kind == b"zset":
                values = [m for m, _ in conn.zrange(key, 0, -1, withscores=True)]
            elif kind == b"stream":
                values = [
                    item
                    for _, fields in conn.xrange(key)
                    for pair in fields.items()
                    for item in pair
                ]
            else:
                values = []
            for value in values:
                if value is None:
                    continue
                chunks.append(value)
                with contextlib.suppress(zlib.error):
                    chunks.append(zlib.decompress(value))
    return b"\n".join(chunks)


@pytest.mark.parametrize("backend", ["vault", "local"])
def test_a_canary_value_leaks_nowhere(
    backend,
    admin_client,
    admin_user,
    make_agent,
    vault_prefix,
    caplog,
    capfd,
    django_capture_on_commit_callbacks,
    rq_burst,
    queue,
):
    caplog.set_level(logging.DEBUG)
    canary = f"canary-{uuid.uuid4().hex}"
    pages: list[bytes] = []
    private, public = generate_keypair()
    _, sealed_token = make_agent("sealed_agent", public_key=public)
    _, plain_token = make_agent("plain_agent")

    def read(token: str) -> dict:
        response = admin_client.get(
            "/api/v1/secrets/canary_secret", HTTP_AUTHORIZATION=f"Bearer {token}"
        )
        assert response.status_code == 200
        return response.json()

    with django_capture_on_commit_callbacks(execute=True):
        # Created in the admin.
        created = admin_client.post(
            reverse("admin:secrets_app_secretmetadata_add"),
            {
                "secret_name": "canary_secret",
                "value": canary,
                "provider": "internal",
                "storage_backend": backend,
                "rotation_policy_days": "1",
            },
        )
        assert created.status_code == 302
        secret = SecretMetadata.objects.get(secret_name="canary_secret")

        # Read by two agents, one sealed and one not.
        body = read(sealed_token)
        context = sealing_context("canary_secret", body["version"])
        assert open_sealed(body["sealed"], private, context).decode() == canary
        assert read(plain_token)["value"] == canary

        # Rotated by the scheduled RQ job (so a real job payload exists), then in the admin.
        SecretMetadata.objects.filter(pk=secret.pk).update(
            last_rotated=timezone.now() - timedelta(days=2)
        )
        # The fixture's queue enqueues at once, not when the test's transaction (which never
        # commits) ends.
        job = queue.enqueue(rotate_due_secrets)
        rq_burst(queue)
        assert job.get_status(refresh=True) == "finished"
        admin_client.post(reverse("admin:secrets_app_secretmetadata_rotate", args=[secret.pk]))
        assert read(plain_token)["value"] != canary

        # Rolled back to the canary in the admin, and read again.
        rolled = admin_client.post(
            reverse("admin:secrets_app_secretmetadata_rollback", args=[secret.pk, 1])
        )
        assert rolled.status_code == 302
        assert read(plain_token)["value"] == canary

    # Every admin page a person would open afterwards.
    urls = [
        reverse("admin:index"),
        reverse("admin:secrets_app_secretmetadata_changelist"),
        reverse("admin:secrets_app_secretmetadata_change", args=[secret.pk]),
        reverse("admin:secrets_app_secretmetadata_versions", args=[secret.pk]),
        reverse("admin:secrets_app_secretmetadata_set_value", args=[secret.pk]),
        reverse("admin:secrets_app_secretmetadata_history", args=[secret.pk]),
        reverse("admin:audit_app_auditlog_changelist"),
        reverse("admin:audit_app_suspiciousactivity_changelist"),
        reverse("admin:agents_app_agent_changelist"),
        "/admin/rq/",
        "/api/v1/openapi.json",
    ]
    urls += [
        reverse("admin:audit_app_auditlog_change", args=[pk])
        for pk in AuditLog.objects.values_list("pk", flat=True)
    ]
    for page_url in urls:
        response = admin_client.get(page_url)
        assert response.status_code == 200, page_url
        pages.append(response.content)

    text, raw = database_dump()
    assert canary not in text
    assert canary.encode() not in raw
    redis_content = redis_dump()
    assert b"rq:job:" in redis_content, "the RQ job payload should have been inspected"
    assert canary.encode() not in redis_content
    assert not any(canary.encode() in page for page in pages)
    out, err = capfd.readouterr()
    assert canary not in out + err
    assert canary not in caplog.text
    assert all(canary not in str(record.args) for record in caplog.records)
