"""Everything done to a secret goes through here: stored in its backend, versioned, audited, and
announced (name and version only) so agents' caches drop the old value.

Values pass through these functions as arguments and return values only: they are never logged,
put into an exception message, an audit row, an RQ job or a Redis key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from agents_app.models import Agent
from audit_app import services as audit
from foundation_client.protocol import SECRETS_ROTATION_CHANNEL, RotationNotice
from foundation_core import notices
from foundation_core.redis_client import get_wire
from secrets_app import value_cache
from secrets_app.backends import get_backend
from secrets_app.exceptions import (
    InvalidSecret,
    RotationFailed,
    SecretDoesNotExist,
    SecretsError,
)
from secrets_app.models import (
    SecretMetadata,
    SecretVersion,
    is_secret_name,
)
from secrets_app.rotators import get_rotator

logger = logging.getLogger("foundation.secrets")


def audit_resource(name: str) -> str:
    """How a secret is named in the audit log: an invalid name as such, never its text (which
    may hold a NUL, a newline or a megabyte)."""
    return f"secret:{name}" if is_secret_name(name) else "secret:(invalid name)"


@contextmanager
def audited(
    event: str,
    actor: object,
    name: str,
    action: str,
    request: HttpRequest | None,
    **metadata: Any,
) -> Iterator[dict[str, Any]]:
    """Audit what the block does to a secret: a ``SecretsError`` as a failure with its error
    (then raised again), else a success with ``metadata`` and what the block put in the dict it
    is given (the version it made, say)."""
    outcome: dict[str, Any] = {}
    try:
        yield outcome
    except SecretsError as exc:
        resource = audit_resource(name)
        audit.record(
            event, actor, resource, action, success=False, request=request, error=exc, **metadata
        )
        raise
    audit.record(
        event,
        actor,
        audit_resource(name),
        action,
        success=True,
        request=request,
        **metadata,
        **outcome,
    )


def announce(name: str, version: int, secret_id: int | None = None) -> None:
    """Tell agents a secret has a new current version, once the change is committed; and every
    site process, whose value caches then drop the older versions (all of them: deleted)."""
    if secret_id is not None:
        notices.publish_on_commit({"secret_id": secret_id, "version": version})

    def publish() -> None:
        try:
            get_wire().publish(SECRETS_ROTATION_CHANNEL, RotationNotice(name, version).encode())
        except Exception as exc:  # the TTL still bounds staleness; never fail the change for it
            logger.warning("could not announce %s v%d: %s", name, version, type(exc).__name__)

    transaction.on_commit(publish)


def _check_value(value: str) -> None:
    if not isinstance(value, str) or value == "":
        raise InvalidSecret("a secret value must be a non-empty string")


def create_secret(
    name: str,
    value: str,
    *,
    actor: object,
    backend: str,
    provider: str | None = None,
    rotation_policy_days: int | None = 90,
    description: str = "",
    request: HttpRequest | None = None,
) -> SecretMetadata:
    """Create a secret and its version 1. Nothing is left behind if the backend fails."""
    with audited("secrets.write", actor, name, "create", request) as outcome:
        if not is_secret_name(name):
            raise InvalidSecret(f"invalid secret name {name[:100]!r}")
        _check_value(value)
        store = get_backend(backend)
        with transaction.atomic():
            if SecretMetadata.objects.filter(secret_name=name).exists():
                raise InvalidSecret(f"secret {name!r} exists already")
            secret = SecretMetadata.objects.create(
                secret_name=name,
                provider=provider or None,
                storage_backend=backend,
                rotation_policy_days=rotation_policy_days,
                description=description,
                last_rotated=timezone.now(),
            )
            version = store.write(secret, value, None)
            outcome.update(version=version, backend=backend)
            secret.current_version = version
            secret.save(update_fields=["current_version"])
            SecretVersion.objects.create(
                secret=secret,
                version=version,
                reason=SecretVersion.Reason.CREATED,
                created_by=audit.actor_name(actor) or "?",
            )
    return secret


def _new_version(
    secret: SecretMetadata, value: str, actor: object, reason: str, rolled_back_from: int | None
) -> int:
    with transaction.atomic():
        locked = SecretMetadata.objects.select_for_update().get(pk=secret.pk)
        version = get_backend(locked.storage_backend).write(locked, value, locked.current_version)
        locked.current_version = version
        fields = ["current_version", "updated_at"]
        if reason in (SecretVersion.Reason.ROTATED, SecretVersion.Reason.SET):
            locked.last_rotated = timezone.now()
            fields.append("last_rotated")
        locked.save(update_fields=fields)
        SecretVersion.objects.create(
            secret=locked,
            version=version,
            reason=reason,
            rolled_back_from=rolled_back_from,
            created_by=audit.actor_name(actor) or "?",
        )
        announce(locked.secret_name, version, locked.pk)
    secret.refresh_from_db()
    return version


def set_value(
    secret: SecretMetadata, value: str, *, actor: object, request: HttpRequest | None = None
) -> int:
    """Store a new value as the next version."""
    with audited("secrets.write", actor, secret.secret_name, "set", request) as outcome:
        _check_value(value)
        version = _new_version(secret, value, actor, SecretVersion.Reason.SET, None)
        outcome["version"] = version
    return version


def rollback(
    secret: SecretMetadata, to_version: int, *, actor: object, request: HttpRequest | None = None
) -> int:
    """Make an earlier version current again, as a new version (history is never rewritten)."""
    name = secret.secret_name
    with audited(
        "secrets.rollback", actor, name, "rollback", request, to_version=to_version
    ) as outcome:
        if not SecretVersion.objects.filter(secret=secret, version=to_version).exists():
            raise SecretDoesNotExist(name, to_version)
        value = read_value(secret, to_version)
        version = _new_version(secret, value, actor, SecretVersion.Reason.ROLLBACK, to_version)
        outcome["version"] = version
    return version


def rotate(secret: SecretMetadata, *, actor: object, request: HttpRequest | None = None) -> int:
    """Rotate now through the provider's rotator. On failure the current version keeps serving."""
    name = secret.secret_name
    with audited("secrets.rotate", actor, name, "rotate", request) as outcome:
        rotator = get_rotator(secret.provider)
        if rotator is None:
            raise RotationFailed(
                f"no rotator is registered for provider {secret.provider or '(none)'!r}: "
                "make the new credential at the provider and set it as a new value"
            )
        try:
            value = rotator(secret)
        except SecretsError:
            raise
        except Exception as exc:
            raise RotationFailed(f"rotator failed for {name!r} ({type(exc).__name__})") from None
        _check_value(value)
        version = _new_version(secret, value, actor, SecretVersion.Reason.ROTATED, None)
        outcome["version"] = version
    return version


def delete_secret(
    secret: SecretMetadata, *, actor: object, request: HttpRequest | None = None
) -> None:
    name = secret.secret_name
    with audited("secrets.delete", actor, name, "delete", request):
        with transaction.atomic():
            # Rows first: if the backend then fails, the deletion rolls back whole.
            SecretMetadata.objects.filter(pk=secret.pk).delete()
            get_backend(secret.storage_backend).destroy(secret)
            announce(name, 0, secret.pk)
        value_cache.forget(secret.pk)


def read_value(secret: SecretMetadata, version: int | None = None) -> str:
    """The value of a version (the current one by default), for the services' own use."""
    wanted = version if version is not None else secret.current_version
    if wanted is None:
        raise SecretDoesNotExist(secret.secret_name)
    return get_backend(secret.storage_backend).read(secret, wanted)


_last_marks: dict[int, tuple[str, float]] = {}


def mark_read_due(secret: SecretMetadata, agent: Agent) -> bool:
    """Whether ``mark_read`` would write (once a minute per secret and reader)."""
    previous = _last_marks.get(secret.pk)
    return not (
        previous is not None and previous[0] == agent.name and time.monotonic() - previous[1] < 60
    )


def mark_read(secret: SecretMetadata, agent: Agent) -> None:
    """Record when and by whom a secret was last read, at most once a minute per secret and
    reader: the audit log has every read; these columns serve the admin list."""
    now = time.monotonic()
    if not mark_read_due(secret, agent):
        return
    _last_marks[secret.pk] = (agent.name, now)
    moment = timezone.now()
    SecretMetadata.objects.filter(pk=secret.pk).update(last_read_at=moment, last_read_by=agent.name)
    Agent.objects.filter(pk=agent.pk).update(last_seen_at=moment)


def due_for_rotation(now: datetime | None = None) -> list[SecretMetadata]:
    now = now or timezone.now()
    candidates = SecretMetadata.objects.filter(rotation_policy_days__gt=0).order_by("pk")
    return [s for s in candidates if s.is_rotation_due(now)]


@dataclass
class RotationReport:
    rotated: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    reminded: list[str] = field(default_factory=list)


def remind(secret: SecretMetadata, actor: object) -> bool:
    """Say once per due period that a secret no rotator can rotate is due: an audit row, and
    the admin shows it due. Returns whether a reminder was given now."""
    due = secret.rotation_due_at()
    if due is None or (secret.rotation_reminded_at and secret.rotation_reminded_at >= due):
        return False
    SecretMetadata.objects.filter(pk=secret.pk).update(rotation_reminded_at=timezone.now())
    audit.record(
        "secrets.rotation_due",
        actor,
        audit_resource(secret.secret_name),
        "remind",
        success=None,
        provider=secret.provider,
        due=due.isoformat(),
    )
    return True


def rotate_due(actor: object = "rotation-scheduler") -> RotationReport:
    """Rotate every secret past its policy whose provider has a rotator; remind of the others.
    One failure never stops the others; a failed secret keeps its ``last_rotated`` and so is
    tried again on the next run."""
    report = RotationReport()
    for secret in due_for_rotation():
        if get_rotator(secret.provider) is None:
            if remind(secret, actor):
                report.reminded.append(secret.secret_name)
            continue
        try:
            rotate(secret, actor=actor)
        except SecretsError as exc:
            logger.warning("rotation of %s failed: %s", secret.secret_name, exc)
            report.failed.append(secret.secret_name)
        except Exception as exc:  # one broken secret must not stop the others
            logger.exception("rotation of %s crashed", secret.secret_name)
            audit.record(
                "secrets.rotate",
                actor,
                audit_resource(secret.secret_name),
                "rotate",
                success=False,
                error=f"internal error ({type(exc).__name__})",
            )
            report.failed.append(secret.secret_name)
        else:
            report.rotated.append(secret.secret_name)
    return report
