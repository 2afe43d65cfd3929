"""Worker apps that verify against the host's shared state: no sidecar of their own.

``flask_app`` (gunicorn) and ``asgi_app`` (uvicorn ``--workers``) each open
``SharedRevocations(JWT_REVOCATION_SHARED_PATH)`` in every worker process, configured from the
environment alone (``RevocationSettings``; the key in ``JWT_REVOCATION_VERIFY_KEY``). Every answer
carries the worker's pid in ``X-Worker-Pid``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from flask import Flask, g
from flask import Response as FlaskResponse

from jwt_revocation.consumer import RevocationVerifier, SharedRevocations
from jwt_revocation.consumer.fastapi import BearerClaims
from jwt_revocation.consumer.flask import FlaskRevocation
from jwt_revocation.shared import RevocationSettings

settings = RevocationSettings()
assert settings.shared_path is not None, "set JWT_REVOCATION_SHARED_PATH"
shared = SharedRevocations(
    settings.shared_path,
    max_token_lifetime=settings.max_token_lifetime.total_seconds(),
    max_clock_skew=settings.max_clock_skew.total_seconds(),
)
verifier = RevocationVerifier(
    shared, key=os.environ["JWT_REVOCATION_VERIFY_KEY"], algorithms=["HS256"]
)

revocation = FlaskRevocation(verifier)
flask_app = Flask(__name__)
revocation.init_app(flask_app)


@flask_app.after_request
def tell_the_worker(response: FlaskResponse) -> FlaskResponse:
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response


@flask_app.get("/whoami")
@revocation.required
def whoami() -> dict[str, object]:
    return {"pid": os.getpid(), "sub": g.claims["sub"]}


@flask_app.get("/healthz")
def healthz() -> dict[str, object]:
    return {"pid": os.getpid()}


claims_of = BearerClaims(verifier)
asgi_app = FastAPI()


@asgi_app.middleware("http")
async def tell_the_asgi_worker(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response


@asgi_app.get("/whoami")
def asgi_whoami(claims: dict[str, Any] = Depends(claims_of)) -> dict[str, Any]:  # noqa: B008 - FastAPI's way
    return {"pid": os.getpid(), "sub": claims["sub"]}


@asgi_app.get("/healthz")
def asgi_healthz() -> dict[str, Any]:
    return {"pid": os.getpid()}
