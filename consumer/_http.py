"""A sidecar over HTTP, for services in other languages and for reverse proxies.

``GET /healthz``   200 while the process runs.
``GET /readyz``    200 when verification can decide, else 503 with the status and why.
``GET /metrics``   Prometheus text format (see ``_metrics``).
``GET /v1/status`` the whole ``stats()`` as JSON; 200 when ready, else 503.
``POST /v1/check`` ``{"token": "..."}`` (needs a verification key) or ``{"claims": {...}}``
                   (claims the caller already verified): 200 with ``verdict`` ``accepted``,
                   ``revoked`` (and ``reason``) or ``rejected`` (and the error), 503 when the state
                   cannot decide (treat it as a rejection), 400 for a malformed request (a
                   body nested past the interpreter's recursion limit included).
``/v1/auth``       forward authentication for reverse proxies (nginx ``auth_request``, Envoy
                   ``ext_authz``, Traefik ``ForwardAuth``, Caddy ``forward_auth``), any method
                   and any path below it: the request's ``Authorization: Bearer`` token is
                   verified; 200 with the subject and chosen claims in response headers
                   (``X-Auth-Subject`` by default), 401 with ``WWW-Authenticate: Bearer
                   error="invalid_token"`` for a missing, invalid or revoked token, or one whose
                   claims cannot be passed on as they are (below), 503 with ``Retry-After``
                   when the state cannot decide.

The server binds loopback addresses only, unless ``allow_remote=True``; beyond loopback, give it
an ``auth_token`` and ``/v1/check`` then requires ``Authorization: Bearer <auth_token>``. Every
connection is held to the server's :class:`~jwt_revocation.shared.HTTPLimits` (a request with
two ``Authorization`` headers is a 400 there, before any handler runs).

Forward authentication passes claims on exactly or not at all: the upstream keys its decisions
on the header, so two different subjects must never arrive as one value. A claim passed on is a
string, a number or a boolean; a string must be printable ASCII (``0x20``-``0x7e``) with no
space at either end, at most 1,024 characters. A token whose passed claim breaks that rule
(CR/LF, any non-ASCII or zero-width character, an over-long value), or that has no ``sub`` or
an empty one while ``sub`` is passed on, is refused with a 401 naming the claim, never rewritten.
Lists, objects and absent claims other than ``sub`` send no header. Tokens and keys never reach
the logs.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from jwt_revocation.shared import ConfigurationError, HTTPLimits
from jwt_revocation.shared._extras import needs_extra
from jwt_revocation.shared._http import (
    BackgroundHTTPServer,
    BodyError,
    json_app,
    json_response,
    read_body,
)

from ._metrics import render_metrics
from ._sidecar import RevocationSidecar
from ._verdict import Verdict, bearer_answer, bearer_token
from ._verifier import RevocationVerifier

with needs_extra("http", __name__):
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

FORWARD_CLAIMS = {"sub": "X-Auth-Subject"}
"""The claims ``/v1/auth`` passes on by default, and the response header of each."""

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_PASSABLE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
"""A claim a header carries as it is: printable ASCII, no space at either end."""
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")
MAX_FORWARDED_CLAIM = 1024
"""The longest claim value ``/v1/auth`` passes on, in characters."""


class SidecarHTTPServer(BackgroundHTTPServer):
    """Serves one sidecar's health, readiness, metrics, checks and forward authentication."""

    def __init__(
        self,
        sidecar: RevocationSidecar,
        verifier: RevocationVerifier,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        verify_tokens: bool = True,
        allow_remote: bool = False,
        auth_token: str | None = None,
        forward_claims: Mapping[str, str] = FORWARD_CLAIMS,
        read_timeout: float = 10.0,
        limits: HTTPLimits | None = None,
    ) -> None:
        bad = [name for name in forward_claims.values() if not _HEADER_NAME.match(name)]
        if bad:
            raise ConfigurationError(f"not a header name for forward_claims: {bad[0]!r}")
        self.sidecar = sidecar
        self.verifier = verifier
        self.verify_tokens = verify_tokens
        self.forward_claims = dict(forward_claims)
        self._auth = None if auth_token is None else f"Bearer {auth_token}".encode()
        app = json_app(
            [
                Route("/healthz", self._healthz, methods=["GET"]),
                Route("/readyz", self._readyz, methods=["GET"]),
                Route("/v1/status", self._status, methods=["GET"]),
                Route("/metrics", self._metrics, methods=["GET"]),
                Route("/v1/check", self._check, methods=["POST"]),
                Route("/v1/auth", self._forward_auth, methods=_METHODS),
                Route("/v1/auth/{rest:path}", self._forward_auth, methods=_METHODS),
            ]
        )
        super().__init__(
            app,
            host=host,
            port=port,
            name=f"{sidecar.name}-http",
            allow_remote=allow_remote,
            remote_warning="/v1/check answers anyone who reaches it; give it an auth_token "
            "and put access control in front",
            read_timeout=read_timeout,
            limits=limits,
        )

    def __repr__(self) -> str:  # the auth token stays out of reprs
        host, port = self.address
        return f"SidecarHTTPServer(address='{host}:{port}', sidecar={self.sidecar.name!r})"

    # -- the decisions, without HTTP ----------------------------------------------------

    def ready(self) -> tuple[int, dict[str, Any]]:
        """The readiness answer: a status and a JSON body."""
        stats = self.sidecar.stats()
        body = {"ready": stats.ready, "status": stats.status.value, "detail": stats.detail}
        return (200 if stats.ready else 503), body

    def check(self, request: Any) -> tuple[int, dict[str, Any]]:
        """The answer to a ``/v1/check`` request body."""
        if not isinstance(request, dict) or ("token" in request) == ("claims" in request):
            return 400, {"error": 'send {"token": "..."} or {"claims": {...}}'}
        verdict: Verdict
        if "token" in request:
            if not self.verify_tokens:
                return 400, {
                    "error": "this sidecar has no verification key; send the claims instead"
                }
            if not isinstance(request["token"], str):
                return 400, {"error": "token must be a string"}
            verdict = self.verifier.decide(request["token"])
        else:
            if not isinstance(request["claims"], dict):
                return 400, {"error": "claims must be an object"}
            verdict = self.verifier.decide_claims(request["claims"])
        return (503 if verdict.outcome == "unavailable" else 200), verdict.as_dict()

    def forward(self, authorization: str | None) -> tuple[int, dict[str, str]]:
        """The forward-auth answer to a request with this ``Authorization`` header."""
        verdict = self.verifier.decide(bearer_token(authorization))
        if not verdict.accepted:
            answer = bearer_answer(verdict)
            return answer.status, answer.headers
        headers = {"Cache-Control": "no-store"}
        for claim, header in self.forward_claims.items():
            value = verdict.claims.get(claim)
            if isinstance(value, bool):
                headers[header] = str(value).lower()
            elif isinstance(value, int | float):
                headers[header] = str(value)
            elif (
                isinstance(value, str)
                and _PASSABLE.fullmatch(value)
                and (len(value) <= MAX_FORWARDED_CLAIM)
            ):
                headers[header] = value
            elif isinstance(value, str) or (claim == "sub" and value is None):
                refused = bearer_answer(Verdict("rejected", _unpassable(claim, value)))
                return refused.status, refused.headers
        return 200, headers

    # -- the endpoints -------------------------------------------------------------------

    async def _healthz(self, request: Request) -> Response:
        return json_response(200, {"status": "alive"})

    async def _readyz(self, request: Request) -> Response:
        return json_response(*self.ready())

    async def _status(self, request: Request) -> Response:
        stats = self.sidecar.stats()
        return json_response(200 if stats.ready else 503, stats.as_dict())

    async def _metrics(self, request: Request) -> Response:
        body = render_metrics(self.sidecar, [self.verifier]) + self.http_metrics()
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def _check(self, request: Request) -> Response:
        if self._auth is not None and not hmac.compare_digest(
            request.headers.get("authorization", "").encode(), self._auth
        ):
            return json_response(
                401,
                {"error": "a valid bearer token is required"},
                {"WWW-Authenticate": 'Bearer realm="jwt-revocation"'},
            )
        try:
            body = await read_body(request, timeout=self.read_timeout)
        except BodyError as err:
            return err.answer
        try:
            parsed = json.loads(body)
        except ValueError:
            return json_response(400, {"error": "the body is not JSON"})
        except RecursionError:  # nested past the interpreter's limit: a 500 with a traceback before
            return json_response(400, {"error": "the body's JSON nests too deep"})
        return json_response(*self.check(parsed))

    async def _forward_auth(self, request: Request) -> Response:
        status, headers = self.forward(request.headers.get("authorization"))
        return Response(status_code=status, headers=headers)


def _unpassable(claim: str, value: str | None) -> str:
    """Why a claim cannot be passed on in a header as it is (never the value itself)."""
    if not value:
        return f"the token has no {claim} to pass on"
    if len(value) > MAX_FORWARDED_CLAIM:
        return f"the {claim} claim is over {MAX_FORWARDED_CLAIM} characters"
    return (
        f"the {claim} claim cannot be passed in a header as it is (only printable ASCII, "
        "no space at either end)"
    )
