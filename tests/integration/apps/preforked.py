"""A Flask service with its sidecar started at import: gunicorn ``--preload`` forks it.

Configured by ``JWT_REVOCATION_*`` settings and ``TEST_SIGNING_KEY``. Every answer carries the
worker's pid in ``X-Worker-Pid``, so a test can tell which worker judged its token.
"""

from __future__ import annotations

import os

from flask import Flask, Response, g

from jwt_revocation.consumer import RevocationSidecar, RevocationVerifier
from jwt_revocation.consumer.flask import FlaskRevocation
from jwt_revocation.shared import RevocationSettings

sidecar = RevocationSidecar.from_settings(RevocationSettings(), name="preforked")
revocation = FlaskRevocation(
    RevocationVerifier(sidecar, key=os.environ["TEST_SIGNING_KEY"], algorithms=["HS256"])
)
app = Flask(__name__)
revocation.init_app(app)  # starts the sidecar in the master, before gunicorn forks


@app.after_request
def tell_the_worker(response: Response) -> Response:
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response


@app.get("/whoami")
@revocation.required
def whoami() -> dict[str, object]:
    return {"pid": os.getpid(), "sub": g.claims["sub"]}


@app.get("/healthz")
def healthz() -> dict[str, object]:
    return {"ready": sidecar.ready, "status": sidecar.status.value}
