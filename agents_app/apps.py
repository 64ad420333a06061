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
        post_save.connect(_provision, sender=Agent, dispatch_uid="provision_agent")
        post_delete.connect(_deprovision, sender=Agent, dispatch_uid="deprovision_agent")

        from agents_app import audit_signals
        from agents_app.services import on_notice
        from foundation_core import notices

        audit_signals.connect()
        notices.register(on_notice)


def _forget(**kwargs: object) -> None:
    from django.db import transaction

    from agents_app.services import forget_agents
    from foundation_core import notices

    forget_agents()
    # Again once the change is visible to other connections, in case a read in between cached
    # the old state; and in every other site process (a revocation takes effect everywhere).
    transaction.on_commit(forget_agents)
    notices.publish_on_commit({"agents": True})


def _provision(instance: object, **kwargs: object) -> None:
    """The agent's Redis user follows its row, once the change is committed."""
    from django.db import transaction

    from agents_app.wire import provision_safely

    disconnect = bool(getattr(instance, "_disconnect", False))
    transaction.on_commit(lambda: provision_safely(instance, disconnect=disconnect))  # type: ignore[arg-type]


def _deprovision(instance: object, **kwargs: object) -> None:
    import logging

    from django.db import transaction
    from redis.exceptions import RedisError

    from agents_app.wire import deprovision

    name = str(getattr(instance, "name", ""))

    def remove() -> None:
        try:
            deprovision(name)
        except RedisError as exc:
            logging.getLogger("foundation.agents.wire").error(
                "could not remove agent %s from Redis: %s", name, type(exc).__name__
            )

    transaction.on_commit(remove)
