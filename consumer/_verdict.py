"""One decision on a token, made in one place and rendered by every front end.

:meth:`RevocationVerifier.decide` and :meth:`RevocationVerifier.decide_claims` turn the
verifier's exceptions into a :class:`Verdict` with :func:`judge`, the only place that maps them:

=============== ========================================= ===============================
outcome         raised by the check                       ``reason``
=============== ========================================= ===============================
``accepted``    nothing                                   None
``revoked``     :class:`TokenRevokedError`                the revocation reason
``rejected``    any other ``jwt.InvalidTokenError``       the PyJWT error's class name
``unavailable`` :class:`SidecarUnavailableError`          why the state cannot decide
=============== ========================================= ===============================

Each front end renders a verdict in its own format: ``POST /v1/check`` as a JSON body
(:meth:`Verdict.as_dict`), a bearer-protected request as 200, 401 or 503
(:func:`bearer_answer`, used by FastAPI, Flask and the HTTP sidecar), the CLI's ``check`` as an
exit status, the demo as a table cell. ``detail`` may name a jti or a user id; never a token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import jwt

from jwt_revocation.shared import SidecarUnavailableError, TokenRevokedError

Outcome = Literal["accepted", "revoked", "rejected", "unavailable"]
"""What a verdict says of a token."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision on one token: an outcome, a reason a program can branch on, and detail."""

    outcome: Outcome
    reason: str | None = None
    """The revocation reason, the PyJWT error's class name, or why the state cannot decide."""
    detail: str = ""
    claims: Mapping[str, Any] = field(default_factory=dict)
    """The verified claims when accepted; empty otherwise."""

    @property
    def accepted(self) -> bool:
        """True only for an accepted token."""
        return self.outcome == "accepted"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready answer: ``verdict`` and, as they apply, ``reason``, ``detail``, ids.

        A revoked token's reason says all; the detail is given for a rejected token and an
        undecidable state, where it says what to fix.
        """
        body: dict[str, Any] = {"verdict": self.outcome}
        if self.reason is not None:
            body["reason"] = self.reason
        if self.detail and self.outcome in ("rejected", "unavailable"):
            body["detail"] = self.detail
        if self.accepted:
            body["jti"] = self.claims.get("jti")
            body["sub"] = self.claims.get("sub")
        return body


def judge(check: Callable[[T], Mapping[str, Any]], subject: T) -> Verdict:
    """Run ``check(subject)`` and turn what it returns or raises into a :class:`Verdict`."""
    try:
        claims = check(subject)
    except SidecarUnavailableError as err:
        return Verdict("unavailable", err.reason, str(err))
    except TokenRevokedError as err:
        return Verdict("revoked", err.reason, str(err))
    except jwt.InvalidTokenError as err:
        return Verdict("rejected", type(err).__name__, str(err))
    return Verdict("accepted", claims=claims)


MISSING_TOKEN = Verdict("rejected", "missing_token", "a bearer token is required")
"""The verdict on a request with no bearer token."""


@dataclass(frozen=True, slots=True)
class BearerAnswer:
    """How an HTTP front end answers a bearer-protected request that is not accepted."""

    status: int
    """401 for a missing, invalid or revoked token; 503 when the state cannot decide."""
    headers: dict[str, str]
    body: dict[str, str]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def bearer_answer(verdict: Verdict) -> BearerAnswer:
    """The RFC 6750 answer to a request whose verdict is not ``accepted``."""
    headers = {"Cache-Control": "no-store"}
    if verdict.outcome == "unavailable":
        headers["Retry-After"] = "1"
        description = f"revocations cannot be checked ({verdict.reason})"
        return BearerAnswer(503, headers, _body("temporarily_unavailable", description))
    if verdict.reason == "missing_token":
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return BearerAnswer(401, headers, _body("missing_token", verdict.detail))
    if verdict.outcome == "revoked":
        description = f"the token is revoked ({verdict.reason})"
    else:
        description = str(verdict.reason)  # the error's class name: the detail may name ids
    headers["WWW-Authenticate"] = (
        f'Bearer realm="api", error="invalid_token", error_description="{_quoted(description)}"'
    )
    return BearerAnswer(401, headers, _body("invalid_token", description))


def _body(error: str, description: str) -> dict[str, str]:
    return {"error": error, "error_description": description}


def _quoted(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")[:200]
