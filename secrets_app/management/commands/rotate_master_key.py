"""Re-wrap every local data key under the current master key.

Without downtime: (1) deploy the new key as FOUNDATION_MASTER_KEY and the old one in
FOUNDATION_PREVIOUS_MASTER_KEYS, so every process can read both; (2) run this command, which
re-wraps data keys in short transactions (values are never decrypted to disk, and an interrupted
run resumes where it stopped); (3) remove the old key from FOUNDATION_PREVIOUS_MASTER_KEYS.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit_app import services as audit
from secrets_app.backends.local import keyring, rewrap_all
from secrets_app.exceptions import SecretsError


class Command(BaseCommand):
    help = "Re-wrap every local data key under the current FOUNDATION_MASTER_KEY."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        actor = "manage.py rotate_master_key"
        try:
            ring = keyring()
            done, total = rewrap_all(batch_size=batch_size)
        except SecretsError as exc:
            audit.record(
                "secrets.master_key", actor, "master_key", "rewrap", success=False, error=exc
            )
            raise CommandError(str(exc)) from None
        audit.record(
            "secrets.master_key",
            actor,
            "master_key",
            "rewrap",
            success=True,
            key_id=ring.current_id,
            rewrapped=done,
            total=total,
        )
        self.stdout.write(
            f"re-wrapped {done} data key(s) under master key {ring.current_id}; "
            f"{total} local value(s) in all"
        )
