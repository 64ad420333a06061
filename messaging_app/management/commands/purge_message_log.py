"""Delete message-log rows past their retention, now (the cron job does it every minute)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from messaging_app import retention


class Command(BaseCommand):
    help = (
        "Delete message-log rows older than MESSAGE_LOG_RETENTION_DAYS (or --days), in batches "
        "of short transactions."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, help="keep this many days instead of the setting")
        parser.add_argument("--batch", type=int, default=retention.BATCH, help="rows a batch")
        parser.add_argument(
            "--max-seconds", type=float, help="stop after this long (default: when done)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1")
        report = retention.purge(
            days=days,
            batch=options["batch"],
            max_seconds=options["max_seconds"],
            actor="manage.py purge_message_log",
        )
        left = "" if report.finished else "; older rows are left for the next run"
        self.stdout.write(
            f"deleted {report.deleted} rows older than {report.cutoff.isoformat()} "
            f"in {report.batches} batches{left}"
        )
