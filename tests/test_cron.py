"""The site's schedule (``foundation_site/cron.py``, the composition root's): each recurring
job once, on its configured cron, with no arguments (jobs carry ids, never values)."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    ("job", "setting"),
    [
        ("purge_message_log", "MESSAGE_LOG_RETENTION_CRON"),
        ("rotate_due_secrets", "SECRETS_ROTATION_CRON"),
    ],
)
def test_the_cron_module_schedules_each_job_once(settings, job, setting):
    from rq import cron

    import foundation_site.cron as schedule

    cron._job_data_registry.clear()
    importlib.reload(schedule)
    entries = [e for e in cron._job_data_registry if e.get("name") == job]
    assert len(entries) == 1
    assert entries[0]["cron"] == getattr(settings, setting)
    assert entries[0]["queue_name"] == "default"
    assert not entries[0].get("args")
    cron._job_data_registry.clear()
