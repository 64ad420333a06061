"""RQ jobs of the messaging app: they take stream ids, names, times and a user id, nothing else."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model

from messaging_app import retention, services


def _actor(user_id: int | None) -> object:
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    return user or "rq-job"


def replay_dead_letters(entry_ids: list[str], user_id: int | None) -> dict[str, list[str]]:
    report = services.replay_dead_letters(entry_ids, actor=_actor(user_id))
    return {"replayed": report.replayed, "skipped": report.skipped}


def replay_range(receiver: str, start: str, end: str, user_id: int | None) -> int:
    return services.replay_range(
        receiver,
        datetime.fromisoformat(start),
        datetime.fromisoformat(end),
        actor=_actor(user_id),
    )


# A run stops after this long and leaves the rest to the next one (every minute by default): it
# holds the default queue's one worker no longer than that, so a replay waits half a minute at
# most behind it. In steady state a run takes well under a second.
PURGE_SECONDS = 30.0


def purge_message_log() -> dict[str, object]:
    """Scheduled by ``rqcron`` (see ``foundation_site/cron.py``); also
    ``manage.py purge_message_log``."""
    report = retention.purge(max_seconds=PURGE_SECONDS, actor="rq-cron")
    return {"deleted": report.deleted, "batches": report.batches, "finished": report.finished}
