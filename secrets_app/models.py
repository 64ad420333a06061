"""Secret metadata (the seed's ``secrets_metadata``), version history, and the local backend's
ciphertext. Secret values are never stored in plaintext here."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, models
from django.db.models.functions import Now

from agents_app.models import Agent

#: A secret name's characters and length; ``secret_name_segments`` adds the rule for segments.
SECRET_NAME_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}")
NAME_RULE = (
    "1-100 characters: letters, digits, '_', '.', ':', '/' or '-', starting with a letter or "
    "digit; segments between '/' neither empty nor '.' or '..'"
)
#: What a grant's pattern may hold: a secret name, or a prefix of one followed by '*'.
GRANT_PATTERN_RULE = "a secret name, or a prefix followed by '*' ('*' alone grants everything)"


def secret_name_segments(name: object) -> list[str] | None:
    """The '/'-separated segments of a valid secret name, or None.

    Matched whole (a trailing newline is no name) and segment by segment: hvac and requests
    normalise a path, so ``x/../prod/db`` would write, read and destroy Vault's ``prod/db``
    while the metadata and the audit named another secret. No segment may be empty, ``.`` or
    ``..``; the Vault path is built from these segments only."""
    if not isinstance(name, str) or SECRET_NAME_CHARS.fullmatch(name) is None:
        return None
    segments = name.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        return None
    return segments


def is_secret_name(name: object) -> bool:
    return secret_name_segments(name) is not None


def validate_secret_name(value: object) -> None:
    if not is_secret_name(value):
        raise ValidationError(NAME_RULE, code="invalid")


def is_grant_pattern(pattern: object) -> bool:
    """``*``, a secret name, or a prefix of one then ``*``: every segment before the last is a
    whole one (not empty, ``.`` or ``..``); the last may be partial (``db-*``) or empty
    (``demo/*``)."""
    if not isinstance(pattern, str) or not pattern:
        return False
    if not pattern.endswith("*"):
        return is_secret_name(pattern)
    prefix = pattern[:-1]
    if not prefix:
        return True
    if SECRET_NAME_CHARS.fullmatch(prefix) is None and not (
        prefix.endswith("/") and SECRET_NAME_CHARS.fullmatch(prefix[:-1])
    ):
        return False
    return all(segment not in ("", ".", "..") for segment in prefix.split("/")[:-1])


def validate_grant_pattern(value: object) -> None:
    if not is_grant_pattern(value):
        raise ValidationError(GRANT_PATTERN_RULE, code="invalid")


class Backend(models.TextChoices):
    VAULT = "vault", "Vault / OpenBao"
    LOCAL = "local", "Local (AES-256-GCM envelope)"


#: ``SecretMetadata.current``'s query; its one parameter is the name.
#: What the agent API reads of a secret's row (``from_current``), in this order.
CURRENT_COLUMNS = ("id", "storage_backend", "current_version")
CURRENT_QUERY = f"SELECT {', '.join(CURRENT_COLUMNS)} FROM secrets_metadata WHERE secret_name = %s"  # noqa: S608  # nosec B608


class SecretMetadata(models.Model):
    id = models.AutoField(primary_key=True)
    secret_name = models.CharField(max_length=100, unique=True, validators=[validate_secret_name])
    provider = models.CharField(max_length=50, null=True, blank=True)
    storage_backend = models.CharField(
        max_length=50, null=True, blank=True, choices=Backend.choices
    )
    last_rotated = models.DateTimeField(null=True, blank=True)
    rotation_policy_days = models.IntegerField(null=True, blank=True, default=90, db_default=90)
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now(), auto_now=True)
    # Beyond the seed: what the admin list and the agent API need.
    description = models.CharField(max_length=200, blank=True, default="", db_default="")
    current_version = models.IntegerField(null=True, blank=True)
    last_read_at = models.DateTimeField(null=True, blank=True)
    last_read_by = models.CharField(max_length=100, null=True, blank=True)
    # When the scheduler last said a secret no rotator can rotate is due: one reminder a period.
    rotation_reminded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "secrets_metadata"
        verbose_name = "secret"
        ordering = ["secret_name"]
        indexes = [models.Index(fields=["provider"], name="idx_secrets_provider")]

    def __str__(self) -> str:
        return self.secret_name

    def rotation_due_at(self) -> datetime | None:
        """When the rotation policy next asks for a new value (None: no policy)."""
        if not self.rotation_policy_days:
            return None
        since = self.last_rotated or self.created_at
        if not isinstance(since, datetime):
            return None
        return since + timedelta(days=self.rotation_policy_days)

    @classmethod
    def current(cls, name: str) -> SecretMetadata | None:
        """What the agent API needs to serve ``name``: id, backend and current version.

        One plain SELECT rather than a queryset: on the hottest path of the agent API, the ORM's
        query compilation costs more than the database round trip (docs/measurements.md).
        """
        with connection.cursor() as cursor:
            cursor.execute(CURRENT_QUERY, [name])
            return cls.from_current(name, cursor.fetchone())

    @classmethod
    def from_current(cls, name: str, row: tuple[Any, ...] | None) -> SecretMetadata | None:
        """``current``'s answer from a row of ``CURRENT_QUERY`` (the async read runs it too)."""
        if row is None:
            return None
        return cls(pk=row[0], secret_name=name, storage_backend=row[1], current_version=row[2])

    def is_rotation_due(self, now: datetime) -> bool:
        due = self.rotation_due_at()
        return due is not None and due <= now


class SecretVersion(models.Model):
    """Who made each version of a secret, when and why; never the value."""

    class Reason(models.TextChoices):
        CREATED = "created"
        SET = "set"
        ROTATED = "rotated"
        ROLLBACK = "rollback"

    secret = models.ForeignKey(SecretMetadata, on_delete=models.CASCADE, related_name="versions")
    version = models.IntegerField()
    reason = models.CharField(max_length=20, choices=Reason.choices)
    rolled_back_from = models.IntegerField(null=True, blank=True)
    created_by = models.CharField(max_length=100)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["secret", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["secret", "version"], name="uniq_secret_version"),
        ]

    def __str__(self) -> str:
        return f"{self.secret} v{self.version}"


class LocalSecretValue(models.Model):
    """One version of a local-backend secret: AES-256-GCM ciphertext under its own data key,
    which is itself wrapped (AES-256-GCM) by the master key named by ``key_id``."""

    secret = models.ForeignKey(SecretMetadata, on_delete=models.CASCADE, related_name="+")
    version = models.IntegerField()
    nonce = models.BinaryField(max_length=12)
    ciphertext = models.BinaryField()
    wrapped_key = models.BinaryField(max_length=48)
    key_nonce = models.BinaryField(max_length=12)
    key_id = models.CharField(max_length=16, db_index=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "secrets_local_values"
        constraints = [
            models.UniqueConstraint(fields=["secret", "version"], name="uniq_local_secret_version"),
        ]

    def __str__(self) -> str:
        return f"{self.secret_id} v{self.version} (key {self.key_id})"


class SecretGrant(models.Model):
    """Which secrets an agent may read: an exact name, or a prefix ending in ``*``
    (``secrets_app.grants.grant_matches``). A secrets policy kept here, beside the secrets, so
    that the agents' identities know nothing of it."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="grants")
    pattern = models.CharField(max_length=101, validators=[validate_grant_pattern])
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["agent", "pattern"], name="uniq_agent_grant"),
        ]
        # Beyond "change agent" (docs/secrets.md, "Who may issue credentials"): a grant lets
        # its agent, and whoever holds the agent's token, read what it names.
        permissions = [("manage_grants", "Can give and take an agent's secret grants")]

    def __str__(self) -> str:
        return f"{self.agent} may read {self.pattern}"
