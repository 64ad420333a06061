"""Rotate every secret past its rotation policy, now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from secrets_app import services


class Command(BaseCommand):
    help = "Rotate every secret whose rotation policy says it is due."

    def handle(self, *args: Any, **options: Any) -> None:
        report = services.rotate_due(actor="manage.py rotate_due_secrets")
        for name in report.rotated:
            self.stdout.write(f"rotated {name}")
        for name in report.failed:
            self.stderr.write(
                f"FAILED  {name} (the current version keeps serving; see the audit log)"
            )
        self.stdout.write(f"{len(report.rotated)} rotated, {len(report.failed)} failed")
        if report.failed:
            raise CommandError(f"{len(report.failed)} rotation(s) failed")
