"""Lift an admin log-in lock-out before its time, for a user name or an address; audited."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit_app import services as audit
from foundation_core import ratelimit


class Command(BaseCommand):
    help = "Unlock the admin's log-in for a user name (--user) and/or an address (--address)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user", help="the user name locked out")
        parser.add_argument("--address", help="the client address locked out")

    def handle(self, *args: Any, user: str | None, address: str | None, **options: Any) -> None:
        if not user and not address:
            raise CommandError("give --user NAME, --address IP, or both")
        actor = f"manage.py unlock_login ({getpass.getuser()})"
        for kind, key in (("login-user", user), ("login-ip", address)):
            if key:
                ratelimit.clear(kind, key)
                audit.record("auth.unlock", actor, f"{kind}:{key}", "unlock")
                self.stdout.write(f"unlocked {kind} {key}")
