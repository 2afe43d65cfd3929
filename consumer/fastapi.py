"""FastAPI and Starlette: a dependency, an ASGI middleware and a lifespan for the sidecar.

Install with ``pip install "jwt-revocation[fastapi]"``::

    sidecar = RevocationSidecar("kafka:9092", max_token_lifetime="1h")
    verifier = RevocationVerifier(sidecar, key=PUBLIC_KEY, algorithms=["RS256"])
    app = FastAPI(lifespan=sidecar_lifespan(sidecar))
    claims_of = BearerClaims(verifier)

    @app.get("/orders")
    def orders(claims: dict = Depends(claims_of)) -> dict: ...

A missing, invalid or revoked token gets 401 with a ``WWW-Authenticate: Bearer`` header; a
sidecar that cannot decide (loading, stale, failed) gets 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from jwt_revocation.shared import DurationLike
from jwt_revocation.shared._arguments import require_instance
from jwt_revocation.shared._duration import parse_seconds
from jwt_revocation.shared._extras import needs_extra

from ._sidecar import RevocationSidecar
from ._verdict import bearer_answer, bearer_token
from ._verifier import RevocationVerifier, require_verifier

with needs_extra("fastapi", __name__):
    from starlette.requests import HTTPConnection
    from starlette.responses import JSONResponse
    from starlette.types import ASGIApp, Receive, Scope, Send


class BearerClaims:
    """A FastAPI dependency that returns the verified claims of the request's bearer token."""

    def __init__(self, verifier: RevocationVerifier) -> None:
        self.verifier = require_verifier(verifier)

    async def __call__(self, connection: HTTPConnection) -> dict[str, Any]:
        verdict = self.verifier.decide(bearer_token(connection.headers.get("authorization")))
        if verdict.accepted:
            return dict(verdict.claims)
        from fastapi import HTTPException

        answer = bearer_answer(verdict)
        raise HTTPException(answer.status, detail=answer.body, headers=answer.headers)


class RevocationMiddleware:
    """ASGI middleware: every HTTP request but ``exclude`` paths needs an accepted token.

    The claims are put in ``scope["state"]["claims"]`` (``request.state.claims``).
    """

    def __init__(
        self,
        app: ASGIApp,
        verifier: RevocationVerifier,
        *,
        exclude: Collection[str] = ("/healthz", "/readyz", "/metrics"),
    ) -> None:
        self.app = app
        self.verifier = require_verifier(verifier)
        self.exclude = set(exclude)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exclude:
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        verdict = self.verifier.decide(bearer_token(connection.headers.get("authorization")))
        if not verdict.accepted:
            answer = bearer_answer(verdict)
            response = JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["claims"] = dict(verdict.claims)
        await self.app(scope, receive, send)


def sidecar_lifespan(
    sidecar: RevocationSidecar,
    *,
    timeout: DurationLike = 60.0,
    verifiers: Iterable[RevocationVerifier] = (),
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A lifespan that starts the sidecar (caught up) before serving and stops it after.

    The key sets of ``verifiers`` built with ``jwks_url`` are fetched before serving too: a
    verify runs on the event loop, and only a token with an unknown ``kid`` (at most once per
    refetch interval) then waits for the provider.
    """
    require_instance(sidecar, RevocationSidecar, name="sidecar", how="a RevocationSidecar")
    timeout = parse_seconds(timeout, name="timeout")
    listed = [require_verifier(verifier) for verifier in verifiers]

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        for verifier in listed:
            await asyncio.to_thread(verifier.load_keys)
        await asyncio.to_thread(sidecar.start, timeout)
        try:
            yield
        finally:
            await asyncio.to_thread(sidecar.stop)

    return lifespan
