"""Recurring jobs, for ``manage.py rqcron foundation_site.cron`` (django-rq's cron scheduler)."""

from __future__ import annotations

from django.conf import settings
from rq import cron

from secrets_app.jobs import rotate_due_secrets

cron.register(
    rotate_due_secrets,
    queue_name="default",
    cron=settings.SECRETS_ROTATION_CRON,
    name="rotate_due_secrets",
)
