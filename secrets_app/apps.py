from __future__ import annotations

from django.apps import AppConfig


class SecretsConfig(AppConfig):
    name = "secrets_app"
    verbose_name = "Secrets"
