"""Move a deployment's messages from the shared-password layout (protocol 1) to protocol 2."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit_app import services as audit
from messaging_app.services.upgrade import upgrade


class Command(BaseCommand):
    help = (
        "Move pending, delayed and dead-lettered messages and unrecorded status events from "
        "protocol 1 (keys under foundation:msg:) to protocol 2. Stop agents and the old recorder "
        "first; safe to run again."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count what would move")

    def handle(self, *args: Any, dry_run: bool, **options: Any) -> None:
        report = upgrade(dry_run=dry_run)
        verb = "would move" if dry_run else "moved"
        self.stdout.write(
            f"{verb}: {report.inbox_entries} inbox entries, {report.delayed} delayed retries, "
            f"{report.dead_letters} dead letters, {report.events} unrecorded events "
            f"({report.log_rows} log rows) of {len(report.agents)} agent(s)"
        )
        for item in report.unreadable:
            self.stderr.write(f"not an envelope, kept as a dead letter: {item}")
        if not dry_run:
            audit.record(
                "messaging.upgrade",
                "manage.py upgrade_wire",
                "redis:wire",
                "upgrade",
                agents=report.agents,
                inbox_entries=report.inbox_entries,
                delayed=report.delayed,
                dead_letters=report.dead_letters,
                events=report.events,
            )
