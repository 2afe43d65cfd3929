"""A sidecar over HTTP, for services in other languages: health, readiness, metrics, checks.

``GET /healthz``   200 while the process runs.
``GET /readyz``    200 when verification can decide, else 503 with the status and why.
``GET /metrics``   Prometheus text format (see ``_metrics``).
``GET /v1/status`` the whole ``stats()`` as JSON; 200 when ready, else 503.
``POST /v1/check`` ``{"token": "..."}`` (needs a verification key) or ``{"claims": {...}}``
                   (claims the caller already verified): 200 with ``verdict`` ``accepted``,
                   ``revoked`` (and ``reason``) or ``rejected`` (and the error), 503 when the state
                   cannot decide (treat it as a rejection), 400 for a malformed request.

The server binds loopback addresses only, unless ``allow_remote=True``: the check endpoint
has no authentication of its own. Tokens and keys never reach the logs.
"""

from __future__ import annotations

import json
from typing import Any

from jwt_revocation.shared._http import BackgroundHTTPServer, JSONRequestHandler

from ._metrics import render_metrics
from ._sidecar import RevocationSidecar
from ._verdict import Verdict
from ._verifier import RevocationVerifier


class SidecarHTTPServer(BackgroundHTTPServer):
    """Serves one sidecar's health, readiness, metrics and checks from a background thread."""

    def __init__(
        self,
        sidecar: RevocationSidecar,
        verifier: RevocationVerifier,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        verify_tokens: bool = True,
        allow_remote: bool = False,
    ) -> None:
        self.sidecar = sidecar
        self.verifier = verifier
        self.verify_tokens = verify_tokens
        super().__init__(
            type("Handler", (_Handler,), {"app": self}),
            host=host,
            port=port,
            name=f"{sidecar.name}-http",
            allow_remote=allow_remote,
            remote_warning="/v1/check has no authentication; put your own access control in front",
        )

    # -- the endpoints -------------------------------------------------------------------

    def ready(self) -> tuple[int, dict[str, Any]]:
        stats = self.sidecar.stats()
        body = {"ready": stats.ready, "status": stats.status.value, "detail": stats.detail}
        return (200 if stats.ready else 503), body

    def check(self, request: Any) -> tuple[int, dict[str, Any]]:
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


class _Handler(JSONRequestHandler):
    app: SidecarHTTPServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        if self.path == "/healthz":
            self.send_json(200, {"status": "alive"})
        elif self.path == "/readyz":
            self.send_json(*self.app.ready())
        elif self.path == "/v1/status":
            stats = self.app.sidecar.stats()
            self.send_json(200 if stats.ready else 503, stats.as_dict())
        elif self.path == "/metrics":
            body = render_metrics(self.app.sidecar, [self.app.verifier])
            self.send_body(200, body, "text/plain; version=0.0.4; charset=utf-8")
        else:
            self.send_json(404, {"error": f"no such endpoint: GET {self.path}"})

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        if self.path != "/v1/check":
            self.send_json(404, {"error": f"no such endpoint: POST {self.path}"})
            return
        body = self.read_body()
        if body is None:
            return
        try:
            request = json.loads(body)
        except ValueError:
            self.send_json(400, {"error": "the body is not JSON"})
            return
        self.send_json(*self.app.check(request))
