"""Recurring jobs, for ``manage.py rqcron foundation_site.cron`` (django-rq's cron scheduler)."""

from __future__ import annotations

from django.conf import settings
from rq import cron

from foundation_core.ratelimit import flush_refused
from messaging_app.jobs import purge_message_log
from secrets_app.jobs import rotate_due_secrets

cron.register(
    rotate_due_secrets,
    queue_name="default",
    cron=settings.SECRETS_ROTATION_CRON,
    name="rotate_due_secrets",
)

cron.register(
    purge_message_log,
    queue_name="default",
    cron=settings.MESSAGE_LOG_RETENTION_CRON,
    name="purge_message_log",
)

cron.register(
    flush_refused,
    queue_name="default",
    cron=settings.RATELIMIT_CRON,
    name="flush_refused",
)
