"""Rotate every secret past its rotation policy, now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from secrets_app import services


class Command(BaseCommand):
    help = (
        "Rotate every due secret whose provider has a rotator; remind (audit) of the other due "
        "ones once per period."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = services.rotate_due(actor="manage.py rotate_due_secrets")
        for name in report.rotated:
            self.stdout.write(f"rotated {name}")
        for name in report.failed:
            self.stderr.write(
                f"FAILED  {name} (the current version keeps serving; see the audit log)"
            )
        for name in report.reminded:
            self.stdout.write(f"due     {name} (no rotator for its provider: set a new value)")
        self.stdout.write(
            f"{len(report.rotated)} rotated, {len(report.failed)} failed, "
            f"{len(report.reminded)} reminded"
        )
        if report.failed:
            raise CommandError(f"{len(report.failed)} rotation(s) failed")
