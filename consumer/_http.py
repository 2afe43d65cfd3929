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

import ipaddress
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt

from jwt_revocation.shared import ConfigurationError, SidecarUnavailableError, TokenRevokedError

from ._metrics import render_metrics
from ._sidecar import RevocationSidecar
from ._verifier import RevocationVerifier

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


class RevocationHTTPError(Exception):
    """The answer for a request whose token cannot be accepted: a status, headers, a body."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.body = {"error": error, "error_description": description}
        self.headers = {"Cache-Control": "no-store"}
        if status == 401:
            challenge = 'Bearer realm="api"'
            if error != "missing_token":
                challenge += f', error="invalid_token", error_description="{_quoted(description)}"'
            self.headers["WWW-Authenticate"] = challenge
        else:
            self.headers["Retry-After"] = "1"


def _quoted(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")[:200]


def claims_from_header(verifier: RevocationVerifier, authorization: str | None) -> dict[str, Any]:
    """Verify the bearer token of an ``Authorization`` header, or raise RevocationHTTPError."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RevocationHTTPError(401, "missing_token", "a bearer token is required")
    try:
        return verifier.verify(token.strip())
    except TokenRevokedError as err:
        raise RevocationHTTPError(
            401, "invalid_token", f"the token is revoked ({err.reason})"
        ) from None
    except jwt.InvalidTokenError as err:
        raise RevocationHTTPError(401, "invalid_token", type(err).__name__) from None
    except SidecarUnavailableError as err:
        raise RevocationHTTPError(
            503, "temporarily_unavailable", f"revocations cannot be checked ({err.reason})"
        ) from None


class SidecarHTTPServer:
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
        if not allow_remote and not _loopback(host):
            raise ConfigurationError(
                f"refusing to serve on {host!r}: /v1/check has no authentication; bind a "
                "loopback address, or pass allow_remote=True (--http-allow-remote) behind "
                "your own access control"
            )
        self.sidecar = sidecar
        self.verifier = verifier
        self.verify_tokens = verify_tokens
        handler = type("Handler", (_Handler,), {"app": self})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as err:
            raise ConfigurationError(f"cannot listen on {host}:{port}: {err.strerror}") from err
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The host and port the server listens on (the real port when 0 was asked)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"{self.sidecar.name}-http", daemon=True
        )
        self._thread.start()
        logger.info("http listening address=%s:%d", *self.address)

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent, and fine before :meth:`start`."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    # -- the endpoints -------------------------------------------------------------------

    def ready(self) -> tuple[int, dict[str, Any]]:
        stats = self.sidecar.stats()
        body = {"ready": stats.ready, "status": stats.status.value, "detail": stats.detail}
        return (200 if stats.ready else 503), body

    def check(self, request: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(request, dict) or ("token" in request) == ("claims" in request):
            return 400, {"error": 'send {"token": "..."} or {"claims": {...}}'}
        try:
            if "token" in request:
                if not self.verify_tokens:
                    return 400, {
                        "error": "this sidecar has no verification key; send the claims instead"
                    }
                if not isinstance(request["token"], str):
                    return 400, {"error": "token must be a string"}
                claims = self.verifier.verify(request["token"])
            else:
                if not isinstance(request["claims"], dict):
                    return 400, {"error": "claims must be an object"}
                claims = request["claims"]
                self.verifier.check_claims(claims)
        except SidecarUnavailableError as err:
            return 503, {"verdict": "unavailable", "reason": err.reason, "detail": str(err)}
        except TokenRevokedError as err:
            return 200, {"verdict": "revoked", "reason": err.reason}
        except jwt.InvalidTokenError as err:
            return 200, {"verdict": "rejected", "reason": type(err).__name__, "detail": str(err)}
        return 200, {"verdict": "accepted", "jti": claims.get("jti"), "sub": claims.get("sub")}


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    app: SidecarHTTPServer
    server_version = "jwt-revocation"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._json(200, {"status": "alive"})
        elif self.path == "/readyz":
            self._json(*self.app.ready())
        elif self.path == "/v1/status":
            stats = self.app.sidecar.stats()
            self._json(200 if stats.ready else 503, stats.as_dict())
        elif self.path == "/metrics":
            body = render_metrics(self.app.sidecar, [self.app.verifier])
            self._send(200, body, "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._json(404, {"error": f"no such endpoint: GET {self.path}"})

    def do_POST(self) -> None:
        if self.path != "/v1/check":
            self._json(404, {"error": f"no such endpoint: POST {self.path}"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._json(411, {"error": "Content-Length is required"})
            return
        if length > MAX_BODY_BYTES:
            self._json(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
            return
        try:
            request = json.loads(self.rfile.read(length))
        except ValueError:
            self._json(400, {"error": "the body is not JSON"})
            return
        self._json(*self.app.check(request))

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line holds no token (tokens travel in the body); keep it at debug level.
        logger.debug("http %s", format % args)
