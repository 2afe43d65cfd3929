"""A FastAPI service whose sidecar starts in each worker's lifespan (``uvicorn --workers``).

Configured by ``JWT_REVOCATION_*`` settings and ``TEST_SIGNING_KEY``. Every answer carries the
worker's pid in ``X-Worker-Pid``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request, Response

from jwt_revocation.consumer import RevocationSidecar, RevocationVerifier
from jwt_revocation.consumer.fastapi import BearerClaims, sidecar_lifespan
from jwt_revocation.shared import RevocationSettings

sidecar = RevocationSidecar.from_settings(RevocationSettings(), name=f"asgi-{os.getpid()}")
claims_of = BearerClaims(
    RevocationVerifier(sidecar, key=os.environ["TEST_SIGNING_KEY"], algorithms=["HS256"])
)
app = FastAPI(lifespan=sidecar_lifespan(sidecar))


@app.middleware("http")
async def tell_the_worker(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response


@app.get("/whoami")
def whoami(claims: dict[str, Any] = Depends(claims_of)) -> dict[str, Any]:  # noqa: B008 - FastAPI's way
    return {"pid": os.getpid(), "sub": claims["sub"]}


@app.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"ready": sidecar.ready, "status": sidecar.status.value}
