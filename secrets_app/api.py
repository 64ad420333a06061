"""The agent API for secrets: ``GET /api/v1/secrets/<name>`` with ``Authorization: Bearer``.

Every answer, success or failure, is audited with its reason. When the agent registered an X25519
public key the value is sealed to it, so that only ciphertext crosses proxies and logs.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.security import HttpBearer

from agents_app.models import Agent
from agents_app.services import authenticate
from audit_app import services as audit
from foundation_client._sealing import load_public_key, seal, sealing_context
from secrets_app import services
from secrets_app.exceptions import (
    AccessDenied,
    BackendUnavailable,
    MasterKeyError,
    SecretDoesNotExist,
)

logger = logging.getLogger("foundation.secrets.api")
router = Router(tags=["secrets"])


class AgentToken(HttpBearer):
    """Bearer-token auth that audits every refusal, including a missing header."""

    def __call__(self, request: HttpRequest) -> Agent | None:
        agent = super().__call__(request)
        if agent is None:
            has_header = bool(request.headers.get("Authorization"))
            audit.record(
                "secrets.read",
                "(unknown agent)",
                _resource_of(request),
                "read",
                False,
                request,
                "invalid agent token" if has_header else "no agent token",
            )
        return agent

    def authenticate(self, request: HttpRequest, token: str) -> Agent | None:
        return authenticate(token)


def _resource_of(request: HttpRequest) -> str:
    name = request.path.split("/secrets/", 1)[-1]
    return f"secret:{name}"[:200]


class SealedValue(Schema):
    alg: str
    epk: str
    nonce: str
    ciphertext: str


class SecretOut(Schema):
    name: str
    version: int
    value: str | None = None
    sealed: SealedValue | None = None


class ErrorOut(Schema):
    detail: str


@router.get(
    "/{path:name}",
    response={200: SecretOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 503: ErrorOut},
    auth=AgentToken(),
    exclude_none=True,
    summary="Read the current value of a secret",
    description=(
        "Needs a grant for the name (exact or prefix). The value is sealed to the agent's "
        "X25519 public key when one is registered (X25519-HKDF-SHA256-AES256GCM, associated "
        "data `secret:<name>:v<version>`); otherwise it is returned as `value`."
    ),
)
def read_secret(request: HttpRequest, name: str) -> Status[dict[str, Any]]:
    agent: Agent = request.auth  # type: ignore[attr-defined]
    try:
        value, version = services.read_for_agent(agent, name, request)
    except AccessDenied as exc:
        return Status(403, {"detail": exc.reason})
    except SecretDoesNotExist:
        return Status(404, {"detail": f"secret {name!r} does not exist"})
    except (BackendUnavailable, MasterKeyError) as exc:
        logger.warning("secret %s unavailable: %s", name, exc)
        return Status(503, {"detail": "the secret store is unavailable"})
    body: dict[str, Any] = {"name": name, "version": version}
    if agent.public_key:
        body["sealed"] = seal(
            value.encode("utf-8"), load_public_key(agent.public_key), sealing_context(name, version)
        )
    else:
        body["value"] = value
    return Status(200, body)
