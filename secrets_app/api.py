"""The agent API for secrets: ``GET /api/v1/secrets/<name>`` with ``Authorization: Bearer``.

Every answer, success or failure, is audited with its reason. When the agent registered an X25519
public key the value is sealed to it, so that only ciphertext crosses proxies and logs. Every value
answer is signed with the site's key over the request's nonce (``?nonce=``), the agent, the name,
the version and the sealed value (``foundation_client.protocol.SecretAnswer``), so that an agent
pinning the site's key can refuse forged and replayed answers.

This view declares the route for django-ninja's OpenAPI document and answers whatever reaches
Django's handlers (its test client; a server without the lean route). It answers through
``secrets_app.reading.serve``, as the lean route (``secrets_app.asgi``) in front of it does.
"""

from __future__ import annotations

from dataclasses import dataclass

from asgiref.sync import async_to_sync
from django.http import HttpRequest, JsonResponse
from ninja import Field, Router, Schema
from ninja.params import P, QueryEx
from ninja.security import HttpBearer

from audit_app import services as audit
from foundation_client.protocol import ANSWER_NONCE_PATTERN
from secrets_app import reading
from secrets_app.reading import bearer_token

router = Router(tags=["secrets"])


@dataclass(frozen=True)
class PresentedToken:
    """What the client presented (perhaps nothing): always truthy, so that ninja calls the view
    and ``reading.serve`` audits every refusal in one place."""

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
) -> JsonResponse:
    presented: PresentedToken = request.auth  # type: ignore[attr-defined]
    asked = reading.ReadRequest(
        token=presented.token,
        name=name,
        nonce=nonce,
        ip_address=audit.client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT"),
    )
    answer = async_to_sync(reading.serve)(asked, reading.InThread())
    return JsonResponse(answer.body, status=answer.status, headers=answer.headers)
