from __future__ import annotations

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents_app"
    verbose_name = "Agents"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from agents_app.models import Agent, SecretGrant

        for model in (Agent, SecretGrant):
            post_save.connect(_forget, sender=model, dispatch_uid=f"forget_{model.__name__}")
            post_delete.connect(_forget, sender=model, dispatch_uid=f"forget_d_{model.__name__}")


def _forget(**kwargs: object) -> None:
    from django.db import transaction

    from agents_app.services import forget_agents

    forget_agents()
    # Again once the change is visible to other connections, in case a read in between cached
    # the old state.
    transaction.on_commit(forget_agents)
