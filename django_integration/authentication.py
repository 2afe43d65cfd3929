"""DRF authentication: simplejwt's ``JWTAuthentication``, plus the revocation check.

A drop-in: replace ``rest_framework_simplejwt.authentication.JWTAuthentication`` with
``jwt_revocation.django.authentication.JWTAuthentication`` in ``DEFAULT_AUTHENTICATION_CLASSES``
(or ``JWTStatelessUserAuthentication`` likewise). The token is validated by simplejwt itself,
with its settings (``SIGNING_KEY``, ``VERIFYING_KEY``, ``ALGORITHM``, ``AUDIENCE``, ``ISSUER``,
``JWK_URL``, ``LEEWAY``, ``USER_ID_CLAIM``, ``AUTH_TOKEN_CLASSES``...), and fails with its errors
and status codes; then its claims are checked against this process's revocation state, with no
network call:

* revoked (by jti, by a user-wide event, or by its login session): simplejwt's ``InvalidToken``,
  401, ``code`` ``token_not_valid``, ``detail`` "Token is revoked" and the reason in
  ``messages``, as simplejwt reports an invalid token;
* the sidecar cannot decide (starting, stale, failed): :class:`RevocationUnavailable`, 503 with
  ``Retry-After: 1``.
"""

from __future__ import annotations

from typing import Any

from jwt_revocation.consumer import Verdict
from jwt_revocation.shared._extras import needs_extra

from ._check import revocation_verdict

with needs_extra("django", __name__):
    from django.utils.translation import gettext_lazy as _
    from rest_framework import status
    from rest_framework.exceptions import APIException
    from rest_framework.request import Request
    from rest_framework_simplejwt import authentication as simplejwt
    from rest_framework_simplejwt.exceptions import InvalidToken
    from rest_framework_simplejwt.tokens import Token

RESULT_ATTRIBUTE = "_jwt_revocation_result"
"""Where :class:`~jwt_revocation.django.middleware.RevocationMiddleware` leaves the raw token it
accepted and its validated token, so a DRF view behind it does not check the token twice."""


class RevocationUnavailable(APIException):
    """503: revocations cannot be checked right now; DRF sends ``Retry-After: 1`` (``wait``)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = _("Token revocations cannot be checked right now; retry shortly.")
    default_code = "temporarily_unavailable"
    wait = 1


def check_token(token: Token) -> None:
    """Raise simplejwt's ``InvalidToken`` for a revoked token, :class:`RevocationUnavailable`
    when the sidecar cannot decide; return for an accepted one."""
    verdict = revocation_verdict(token.payload)
    if verdict.accepted:
        return
    raise refusal(verdict, token)


def refusal(verdict: Verdict, token: Token | None = None) -> APIException:
    """The DRF error for a verdict that is not ``accepted``."""
    if verdict.outcome == "unavailable":
        return RevocationUnavailable()
    revoked = verdict.outcome == "revoked"
    message = f"Token is revoked ({verdict.reason})" if revoked else str(verdict.reason)
    return InvalidToken(
        {
            "detail": _("Token is revoked") if revoked else _("Token is invalid or expired"),
            "messages": [
                {
                    "token_class": type(token).__name__ if token is not None else None,
                    "token_type": getattr(token, "token_type", None),
                    "message": message,
                }
            ],
        }
    )


class _RevocationCheck(simplejwt.JWTAuthentication):
    """simplejwt's validation, then the revocation check."""

    def authenticate(self, request: Request) -> tuple[Any, Token] | None:
        """As simplejwt's; a token the middleware already accepted is not checked again."""
        header = self.get_header(request)
        if header is None:
            return None
        raw_token = self.get_raw_token(header)
        if raw_token is None:
            return None
        done = getattr(request, RESULT_ATTRIBUTE, None)
        if done is not None and done[0] == raw_token:
            token: Token = done[1]
        else:
            token = self.get_validated_token(raw_token)
        return self.get_user(token), token

    def get_validated_token(self, raw_token: bytes) -> Token:
        """simplejwt's validated token, once the revocation check accepted it."""
        token = super().get_validated_token(raw_token)
        check_token(token)
        return token


class JWTAuthentication(_RevocationCheck):
    """simplejwt's ``JWTAuthentication`` (the user is loaded from the database) that also
    refuses revoked tokens."""


class JWTStatelessUserAuthentication(_RevocationCheck, simplejwt.JWTStatelessUserAuthentication):
    """simplejwt's ``JWTStatelessUserAuthentication`` (a ``TokenUser`` built from the claims,
    no database) that also refuses revoked tokens: what a service without the users needs."""


JWTTokenUserAuthentication = JWTStatelessUserAuthentication
"""simplejwt's older name for the stateless class."""
