"""The agent API for secrets: ``GET /api/v1/secrets/<name>`` with ``Authorization: Bearer``.

Every answer, success or failure, is audited with its reason. When the agent registered an X25519
public key the value is sealed to it, so that only ciphertext crosses proxies and logs.

``serve_read`` is the one implementation. It is reached two ways: through django-ninja (which also
publishes the OpenAPI document) and, in the served ASGI application, through the lean route in
``secrets_app.asgi`` that skips Django's request machinery on the agents' hottest path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.security import HttpBearer

from agents_app.services import authenticate
from audit_app import services as audit
from foundation_client.protocol import load_public_key, seal, sealing_context
from secrets_app import services
from secrets_app.exceptions import (
    AccessDenied,
    BackendUnavailable,
    MasterKeyError,
    SecretDoesNotExist,
)

logger = logging.getLogger("foundation.secrets.api")
router = Router(tags=["secrets"])


def bearer_token(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def serve_read(token: str | None, name: str, request: HttpRequest) -> tuple[int, dict[str, Any]]:
    """Answer one read: (HTTP status, JSON body)."""
    agent = authenticate(token)
    if agent is None:
        audit.record(
            "secrets.read",
            "(unknown agent)",
            services.audit_resource(name),
            "read",
            False,
            request,
            "invalid agent token" if token else "no agent token",
        )
        return 401, {"detail": "Unauthorized"}
    try:
        value, version = services.read_for_agent(agent, name, request)
    except AccessDenied as exc:
        return 403, {"detail": exc.reason}
    except SecretDoesNotExist:
        return 404, {"detail": f"secret {name!r} does not exist"}
    except (BackendUnavailable, MasterKeyError) as exc:
        logger.warning("secret %s unavailable: %s", name, exc)
        return 503, {"detail": "the secret store is unavailable"}
    body: dict[str, Any] = {"name": name, "version": version}
    if agent.public_key:
        try:
            body["sealed"] = seal(
                value.encode("utf-8"),
                load_public_key(agent.public_key),
                sealing_context(name, version),
            )
        except ValueError:
            audit.record(
                "secrets.read",
                agent,
                services.audit_resource(name),
                "seal",
                False,
                request,
                "the agent's public key is unusable",
            )
            return 503, {"detail": "the agent's public key is unusable"}
    else:
        body["value"] = value
    return 200, body


@dataclass(frozen=True)
class PresentedToken:
    """What the client presented (perhaps nothing): always truthy, so that ninja calls the view
    and ``serve_read`` audits every refusal in one place."""

    token: str | None


class AgentToken(HttpBearer):
    """Declares the bearer scheme in the OpenAPI document."""

    def __call__(self, request: HttpRequest) -> PresentedToken:
        return PresentedToken(bearer_token(request.headers.get("Authorization")))

    def authenticate(self, request: HttpRequest, token: str) -> PresentedToken:
        return PresentedToken(token)


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
    presented: PresentedToken = request.auth  # type: ignore[attr-defined]
    status, body = serve_read(presented.token, name, request)
    return Status(status, body)
