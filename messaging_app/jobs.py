"""RQ jobs of the messaging app: they take stream ids, names, times and a user id, nothing else."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model

from messaging_app import services


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
