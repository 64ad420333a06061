"""What lets someone read an agent's secrets, audited wherever it changes: a new public key (the
admin, the ORM). Credentials issued are audited where they are issued (``agents_app.services``),
grants where they are given (``secrets_app.grants``). The actor is the signed-in user of the
request being served, else ``(system)``; all of it is listed on the agent's admin page."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save, pre_save

from agents_app.models import Agent
from audit_app import services

#: The audit events the agent's page lists as its credential history (``agents.grant``: written
#: by ``secrets_app.grants``).
EVENTS = ("agents.create", "agents.token", "agents.public_key", "agents.grant")


def _record(event: str, agent_name: str, action: str, **metadata: Any) -> None:
    services.record_for_request(event, f"agent:{agent_name}", action, **metadata)


def before_agent_save(sender: type[Agent], instance: Agent, **kwargs: Any) -> None:
    instance._audit_key_before = (  # type: ignore[attr-defined]
        None
        if instance.pk is None
        else sender.objects.filter(pk=instance.pk).values_list("public_key", flat=True).first()
    )


def after_agent_save(sender: type[Agent], instance: Agent, created: bool, **kwargs: Any) -> None:
    before = getattr(instance, "_audit_key_before", None)
    if not created and before is not None and before != instance.public_key:
        _record(
            "agents.public_key",
            instance.name,
            "change" if instance.public_key else "remove",
            had_key=bool(before),
        )


def connect() -> None:
    pre_save.connect(before_agent_save, sender=Agent, dispatch_uid="audit_agent_key_before")
    post_save.connect(after_agent_save, sender=Agent, dispatch_uid="audit_agent_key")
