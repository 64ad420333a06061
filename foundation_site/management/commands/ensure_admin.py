"""Make sure an admin account exists (used by `make run`).

With FOUNDATION_ADMIN_USERNAME and FOUNDATION_ADMIN_PASSWORD set, that account is created (or its
password reset). Otherwise, when no superuser exists yet, one named ``admin`` is created with a
random password that is printed once and stored nowhere.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from audit_app import services as audit


class Command(BaseCommand):
    help = "Create the first admin account, or the one named in the environment."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        username = os.environ.get("FOUNDATION_ADMIN_USERNAME")
        password = os.environ.get("FOUNDATION_ADMIN_PASSWORD")
        if bool(username) != bool(password):
            raise CommandError(
                "Set both FOUNDATION_ADMIN_USERNAME and FOUNDATION_ADMIN_PASSWORD, or neither"
            )
        if username and password:
            user, created = user_model.objects.get_or_create(username=username)
            user.is_staff = user.is_superuser = user.is_active = True
            user.set_password(password)
            user.save()
            audit.record(
                "auth.account",
                "ensure_admin",
                f"user:{username}",
                "create" if created else "reset_password",
            )
            self.stdout.write(f"Admin account {username!r} is ready (password from environment).")
            return
        if user_model.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin account exists already.")
            return
        password = secrets.token_urlsafe(16)
        user_model.objects.create_superuser("admin", "", password)
        audit.record("auth.account", "ensure_admin", "user:admin", "create")
        self.stdout.write(
            self.style.SUCCESS(
                "Created admin account\n"
                f"    username: admin\n    password: {password}\n"
                "This password is shown only now; change it in the admin."
            )
        )
