"""Agent identities: a name, a hashed API token, a hashed Redis password and an optional X25519
public key. What an agent may read is the secrets' policy (``secrets_app.models.SecretGrant``)."""

from __future__ import annotations

import hashlib
import secrets

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Now

from foundation_client.protocol import AGENT_NAME_PATTERN
from foundation_client.protocol.sealing import load_public_key

TOKEN_PREFIX = "fdn_"  # noqa: S105 - a prefix, not a credential


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so one SHA-256 (no salt, no stretching) is enough to store."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def validate_public_key(value: str) -> None:
    try:
        load_public_key(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class Agent(models.Model):
    name = models.CharField(
        max_length=63,
        unique=True,
        validators=[
            RegexValidator(
                AGENT_NAME_PATTERN,
                "1-63 characters of a-z, 0-9, '_' or '-', starting with a letter",
            )
        ],
    )
    description = models.CharField(max_length=200, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # SHA-256 of the agent's Redis password: Redis ACLs take a password as this hash (``#...``),
    # so the site can provision the user again (a Redis restart, a new cluster node) without
    # ever keeping the password.
    redis_password_hash = models.CharField(max_length=64, blank=True, editable=False)
    public_key = models.CharField(
        max_length=64,
        blank=True,
        validators=[validate_public_key],
        help_text="X25519 public key (URL-safe base64). When set, secret values are sealed to it.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(db_default=Now())
    last_seen_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        # Beyond "change agent" (docs/secrets.md, "Who may issue credentials"): each of these
        # lets its holder read what the agent may read, so none comes with changing an agent
        # (the third, giving grants, is secrets_app.manage_grants).
        permissions = [
            ("issue_credentials", "Can add agents and issue or regenerate their credentials"),
            ("change_public_key", "Can change an agent's public key"),
        ]

    def __str__(self) -> str:
        return self.name

    def set_new_token(self) -> str:
        """Give the agent a new token and return it; only its hash is kept."""
        token = new_token()
        self.token_hash = hash_token(token)
        return token

    def set_new_redis_password(self) -> str:
        """Give the agent a new Redis password and return it; only its hash is kept."""
        password = secrets.token_urlsafe(32)
        self.redis_password_hash = hash_token(password)
        return password
