"""The agent API for secrets: ``GET /api/v1/secrets/<name>`` with ``Authorization: Bearer``.

Every answer, success or failure, is audited with its reason. When the agent registered an X25519
public key the value is sealed to it, so that only ciphertext crosses proxies and logs. Every value
answer is signed with the site's key over the request's nonce (``?nonce=``), the agent, the name,
the version and the sealed value (``foundation_client.protocol.SecretAnswer``), so that an agent
pinning the site's key can refuse forged and replayed answers.

``serve_read`` is the one implementation. It is reached two ways: through django-ninja (which also
publishes the OpenAPI document) and, in the served ASGI application, through the lean route in
``secrets_app.asgi`` that skips Django's request machinery on the agents' hottest path.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from ninja import Field, Router, Schema, Status
from ninja.params import P, QueryEx
from ninja.security import HttpBearer

from agents_app.models import Agent
from agents_app.services import authenticate_for_read
from audit_app import services as audit
from foundation_client.protocol import (
    ANSWER_NONCE,
    ANSWER_NONCE_PATTERN,
    SecretAnswer,
    load_public_key,
    seal,
    sealing_context,
)
from foundation_site import ratelimit
from secrets_app import services, signing
from secrets_app.exceptions import (
    AccessDenied,
    BackendOutOfSync,
    BackendUnavailable,
    MasterKeyError,
    SecretDoesNotExist,
)
from secrets_app.models import is_secret_name

logger = logging.getLogger("foundation.secrets.api")
router = Router(tags=["secrets"])


def bearer_token(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _too_many(verdict: ratelimit.Verdict, detail: str) -> dict[str, Any]:
    """A 429's body; both routes also send ``retry_after`` as the ``Retry-After`` header."""
    return {"detail": detail, "retry_after": verdict.retry_after}


def serve_read(
    token: str | None, name: str, nonce: str | None, request: HttpRequest
) -> tuple[int, dict[str, Any]]:
    """Answer one read: (HTTP status, JSON body). ``nonce`` is the request's ``?nonce=``: agents
    that predate signed answers send none, and get an answer signed over an empty nonce."""
    # With the agent, in the same query when the token is not cached: the secret's row.
    agent, secret = authenticate_for_read(token, name if is_secret_name(name) else None)
    if agent is None:
        # Per address: beyond the limit, 429 and no row of its own (one summary row later).
        verdict = ratelimit.hit("api", audit.client_ip(request) or "-")
        if not verdict.allowed:
            return 429, _too_many(verdict, "too many failed authentications from this address")
        audit.record(
            "secrets.read",
            "(unknown agent)",
            services.audit_resource(name),
            "read",
            success=False,
            request=request,
            error="invalid agent token" if token else "no agent token",
        )
        return 401, {"detail": "Unauthorized"}
    if settings.RATELIMIT_AGENT_READS:
        verdict = ratelimit.hit("reads", agent.name)
        if not verdict.allowed:
            return 429, _too_many(verdict, "this agent's read quota is used up")
    if nonce is not None and not ANSWER_NONCE.fullmatch(nonce):  # no trailing newline
        audit.record(
            "secrets.read",
            agent,
            services.audit_resource(name),
            "read",
            success=False,
            request=request,
            error="malformed nonce",
        )
        return 400, {"detail": f"nonce must match {ANSWER_NONCE_PATTERN}"}
    try:
        value, version = services.read_for_agent(agent, name, request, secret)
    except AccessDenied as exc:
        return 403, {"detail": exc.reason}
    except SecretDoesNotExist:
        return 404, {"detail": f"secret {name!r} does not exist"}
    except BackendOutOfSync:
        return 503, {
            "detail": "the secret store no longer matches the site for this secret: an "
            "administrator must reconcile it"
        }
    except (BackendUnavailable, MasterKeyError) as exc:
        logger.warning("secret %s unavailable: %s", name, exc)
        return 503, {"detail": "the secret store is unavailable"}
    try:
        return 200, signed_answer(agent, name, version, nonce or "", value)
    except UnusableKey:
        audit.record(
            "secrets.read",
            agent,
            services.audit_resource(name),
            "seal",
            success=False,
            request=request,
            error="the agent's public key is unusable",
        )
        return 503, {"detail": "the agent's public key is unusable"}


class UnusableKey(Exception):
    """The agent's registered public key does not load: its value cannot be sealed to it."""


@functools.lru_cache(maxsize=1024)
def agent_key(public_key: str) -> bytes:
    """The agent's registered key, loaded once per key (every sealed read needs it), or
    ``UnusableKey``."""
    try:
        return load_public_key(public_key)
    except ValueError:
        raise UnusableKey from None


def signed_answer(agent: Agent, name: str, version: int, nonce: str, value: str) -> dict[str, Any]:
    """The answer's body: the value sealed to the agent's key when it has one, signed with the
    site's key over the request's nonce. Both read paths answer with it (``secrets_app.fast_read``
    too)."""
    sealed: dict[str, str] | None = None
    if agent.public_key:
        sealed = seal(
            value.encode("utf-8"), agent_key(agent.public_key), sealing_context(name, version)
        )
    answer = SecretAnswer(
        agent=agent.name,
        name=name,
        version=version,
        nonce=nonce,
        sealed=sealed,
        value=None if sealed is not None else value,
    )
    return signing.sign(answer).to_body()


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


class AnswerSignature(Schema):
    alg: str = Field(description="`Ed25519`")
    sig: str = Field(description="the signature, URL-safe base64")


# The OpenAPI description of what SecretAnswer.to_body() makes.
class SecretOut(Schema):
    agent: str
    name: str
    version: int
    nonce: str = Field(description="the request's nonce (empty when it sent none)")
    value: str | None = None
    sealed: SealedValue | None = None
    signature: AnswerSignature


class ErrorOut(Schema):
    detail: str


class TooManyOut(Schema):
    detail: str
    retry_after: int = Field(description="seconds; also the `Retry-After` header")


@router.get(
    "/{path:name}",
    response={
        200: SecretOut,
        400: ErrorOut,
        401: ErrorOut,
        403: ErrorOut,
        404: ErrorOut,
        429: TooManyOut,
        503: ErrorOut,
    },
    auth=AgentToken(),
    exclude_none=True,
    summary="Read the current value of a secret",
    description=(
        "Needs a grant for the name (exact or prefix). The value is sealed to the agent's "
        "X25519 public key when one is registered (X25519-HKDF-SHA256-AES256GCM, associated "
        "data `secret:<name>:v<version>`); otherwise it is returned as `value`. Every answer is "
        "signed with the site's Ed25519 key over the request's `nonce`, the agent, the name, the "
        "version and the sealed value or the value (layout: "
        "`foundation_client.protocol.SecretAnswer.signed_bytes`)."
    ),
)
def read_secret(
    request: HttpRequest,
    name: str,
    nonce: QueryEx[
        str | None,
        P(
            description=(
                "A fresh random value per request, bound into the answer's signature so that an "
                f"answer cannot be replayed; `{ANSWER_NONCE_PATTERN}`."
            )
        ),
    ] = None,
) -> Status[dict[str, Any]] | JsonResponse:
    presented: PresentedToken = request.auth  # type: ignore[attr-defined]
    status, body = serve_read(presented.token, name, nonce, request)
    if status == 429:
        return JsonResponse(body, status=429, headers={"Retry-After": str(body["retry_after"])})
    return Status(status, body)
