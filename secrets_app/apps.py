from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks


class SecretsConfig(AppConfig):
    name = "secrets_app"
    verbose_name = "Secrets"

    def ready(self) -> None:
        from foundation_core import notices, ratelimit
        from secrets_app import grants, value_cache

        checks.register(check_settings, "secrets")
        grants.connect()
        notices.register(grants.on_notice)
        notices.register(value_cache.on_notice)
        ratelimit.on_refused("api", _failed_tokens_refused)
        ratelimit.on_refused("reads", _quota_refused)


def _failed_tokens_refused(address: str, count: int) -> None:
    from audit_app import services as audit

    resource = "secret:(rate limited)"
    audit.record_rate_limited("api", "secrets.read", "(unknown agent)", resource, count, address)


def _quota_refused(agent: str, count: int) -> None:
    from audit_app import services as audit

    audit.record_rate_limited("reads", "secrets.read", agent, "secret:(quota)", count)


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Catch at start-up what would otherwise fail on the first read or the first rotation."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    problems: list[checks.CheckMessage] = []
    rotators = settings.SECRETS_ROTATORS
    if "default" in rotators:
        problems.append(
            checks.Warning(
                "SECRETS_ROTATORS['default'] serves nothing: only the providers listed rotate",
                hint="name each provider; the built-in random rotator is for 'internal'",
                id="secrets.W001",
            )
        )
    for provider, path in rotators.items():
        try:
            import_string(path)
        except ImportError:
            problems.append(
                checks.Error(
                    f"SECRETS_ROTATORS[{provider!r}] = {path!r} cannot be imported",
                    id="secrets.E002",
                )
            )
    if (
        settings.SECRETS_DEFAULT_BACKEND == "vault"
        and not settings.VAULT_TOKEN
        and not settings.VAULT_ROLE_ID
    ):
        problems.append(
            checks.Warning(
                "neither VAULT_TOKEN nor VAULT_ROLE_ID is set: the vault backend cannot work",
                hint="set VAULT_TOKEN (or _FILE), or VAULT_ROLE_ID and VAULT_SECRET_ID",
                id="secrets.W001",
            )
        )
    return problems
