"""RQ jobs of the secrets app. They take no values and no model instances: ids only."""

from __future__ import annotations

import logging

from secrets_app import services

logger = logging.getLogger("foundation.secrets")


def rotate_due_secrets() -> dict[str, list[str]]:
    """Scheduled by ``rqcron`` (see ``foundation_site/cron.py``).

    Also ``manage.py rotate_due_secrets``.
    """
    report = services.rotate_due()
    logger.info(
        "rotation run: %d rotated, %d failed, %d reminded",
        len(report.rotated),
        len(report.failed),
        len(report.reminded),
    )
    return {"rotated": report.rotated, "failed": report.failed, "reminded": report.reminded}
