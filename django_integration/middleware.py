"""Django middleware for views outside DRF: a bearer token is checked as the DRF class checks it.

Add ``jwt_revocation.django.middleware.RevocationMiddleware`` to ``MIDDLEWARE`` after
``AuthenticationMiddleware``. For each request:

* with no ``Authorization`` header of simplejwt's ``AUTH_HEADER_TYPES``: passed on untouched
  (``request.user`` stays what the session made it; the view decides);
* with an accepted token: ``request.user`` is the token's user (simplejwt's ``TokenUser`` with
  ``STATELESS`` true, the default, or the user loaded from the database), ``request.auth`` the
  validated token and ``request.jwt_claims`` its claims;
* with an invalid or revoked token: 401 with simplejwt's JSON body and ``WWW-Authenticate:
  Bearer realm="api"``; with a sidecar that cannot decide: 503 with ``Retry-After: 1``.

A DRF view behind it reuses the result and does not check the token again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jwt_revocation.shared._extras import needs_extra

from .authentication import (
    RESULT_ATTRIBUTE,
    JWTAuthentication,
    JWTStatelessUserAuthentication,
    RevocationUnavailable,
)

with needs_extra("django", __name__):
    from django.http import HttpRequest, HttpResponse, JsonResponse
    from rest_framework.exceptions import APIException, AuthenticationFailed


class RevocationMiddleware:
    """Authenticates bearer tokens for every view, refusing revoked ones (401) and answering
    503 while revocations cannot be checked."""

    stateless = True
    """Build the user from the claims (no database); subclass with False to load it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.authentication = (
            JWTStatelessUserAuthentication() if self.stateless else JWTAuthentication()
        )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        auth = self.authentication
        header = auth.get_header(request)  # type: ignore[arg-type]
        raw_token = None if header is None else auth.get_raw_token(header)
        if raw_token is None:
            return self.get_response(request)
        try:
            token = auth.get_validated_token(raw_token)
            user = auth.get_user(token)
        except AuthenticationFailed as err:
            return _answer(err, {"WWW-Authenticate": auth.authenticate_header(request)})  # type: ignore[arg-type]
        except RevocationUnavailable as err:
            return _answer(err, {"Retry-After": str(err.wait), "Cache-Control": "no-store"})
        request.user = user
        setattr(request, "auth", token)  # noqa: B010 - HttpRequest declares no such attribute
        setattr(request, "jwt_claims", dict(token.payload))  # noqa: B010
        setattr(request, RESULT_ATTRIBUTE, (raw_token, token))
        return self.get_response(request)


def _answer(err: APIException, headers: dict[str, str]) -> JsonResponse:
    detail: Any = err.detail
    body = detail if isinstance(detail, dict) else {"detail": detail, "code": err.default_code}
    return JsonResponse(body, status=err.status_code, headers=headers)
