from __future__ import annotations

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents_app"
    verbose_name = "Agents"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from agents_app import audit_signals
        from agents_app.models import Agent

        post_save.connect(_provision, sender=Agent, dispatch_uid="provision_agent")
        post_delete.connect(_deprovision, sender=Agent, dispatch_uid="deprovision_agent")
        audit_signals.connect()


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
