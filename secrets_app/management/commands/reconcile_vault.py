"""Bring the site's metadata back in line with Vault after Vault lost data (restored from an
older snapshot, or a development server restarted empty), audited.

For each Vault-backed secret whose current version the site and Vault disagree on, it reports
both; with ``--apply`` the site takes Vault's word: its current version becomes Vault's (none, if
Vault holds nothing: the secret then reads as without a value until an admin sets one), and the
history rows of versions Vault no longer has are dropped, so that the next value Vault numbers
is recorded without a clash. Values Vault lost cannot be brought back from here.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from audit_app import services as audit
from secrets_app import services
from secrets_app.backends.vault import VaultBackend
from secrets_app.models import Backend, SecretMetadata, SecretVersion


class Command(BaseCommand):
    help = "Report (and with --apply, mend) Vault secrets whose versions the site disagrees on."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--apply", action="store_true", help="take Vault's word, audited")

    def handle(self, *args: Any, apply: bool, **options: Any) -> None:
        vault = VaultBackend()
        mended = disagreeing = 0
        for secret in SecretMetadata.objects.filter(storage_backend=Backend.VAULT).order_by("pk"):
            held = vault.current_version(secret)
            if held == secret.current_version:
                continue
            disagreeing += 1
            self.stdout.write(
                f"{secret.secret_name}: the site says version {secret.current_version}, "
                f"vault {held if held is not None else 'holds none'}"
            )
            if not apply:
                continue
            with transaction.atomic():
                locked = SecretMetadata.objects.select_for_update().get(pk=secret.pk)
                dropped, _ = SecretVersion.objects.filter(
                    secret=locked, version__gt=held or 0
                ).delete()
                before = locked.current_version
                locked.current_version = held
                locked.save(update_fields=["current_version", "updated_at"])
                audit.record(
                    "secrets.reconcile",
                    "manage.py reconcile_vault",
                    services.audit_resource(locked.secret_name),
                    "reconcile",
                    site_version=before,
                    vault_version=held,
                    history_dropped=dropped,
                )
            mended += 1
        done = f"{mended} mended" if apply else "run again with --apply to mend them"
        self.stdout.write(f"{disagreeing} secret(s) disagree; {done}")
