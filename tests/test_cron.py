"""The site's schedule (``foundation_site/cron.py``, the composition root's): each recurring
job once, on its configured cron, with no arguments (jobs carry ids, never values)."""

from __future__ import annotations

import importlib


def test_the_cron_module_schedules_the_purge(settings):
    from rq import cron

    import foundation_site.cron as schedule

    cron._job_data_registry.clear()
    importlib.reload(schedule)
    entries = [e for e in cron._job_data_registry if e.get("name") == "purge_message_log"]
    assert len(entries) == 1
    assert entries[0]["cron"] == settings.MESSAGE_LOG_RETENTION_CRON
    assert entries[0]["queue_name"] == "default"
    assert not entries[0].get("args")
    cron._job_data_registry.clear()


def test_the_cron_module_schedules_rotation(settings):
    from rq import cron

    import foundation_site.cron as schedule

    cron._job_data_registry.clear()
    importlib.reload(schedule)
    entries = [e for e in cron._job_data_registry if e.get("name") == "rotate_due_secrets"]
    assert len(entries) == 1
    assert entries[0]["cron"] == settings.SECRETS_ROTATION_CRON
    assert entries[0]["queue_name"] == "default"
    assert not entries[0].get("args")
    cron._job_data_registry.clear()
