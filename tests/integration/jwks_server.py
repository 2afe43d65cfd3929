"""A real JWKS endpoint for tests: ``http.server`` in a thread, serving key sets a test rotates."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass
class SigningKey:
    """An RS256 key pair with its kid: signs tokens, publishes its public JWK."""

    kid: str
    private: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK with ``kid``, ``use`` and ``alg``."""
        data: dict[str, Any] = json.loads(
            jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key())
        )
        return {**data, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        """A token signed with this key, its header naming ``kid`` (default: this key's)."""
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": kid or self.kid})


def claims(user: str = "alice", **extra: Any) -> dict[str, Any]:
    """Claims of a fresh token: ``sub``, ``jti``, ``iat`` now, ``exp`` in ten minutes."""
    now = time.time()
    return {"sub": user, "jti": uuid.uuid4().hex, "iat": now, "exp": int(now) + 600, **extra}


def send_json(handler: BaseHTTPRequestHandler, body: bytes) -> None:
    """Answer 200 with a JSON body from an ``http.server`` handler."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class JWKSServer:
    """Serves ``keys`` as a JWKS at ``url`` and an OpenID discovery document naming it under
    ``issuer``; counts requests; can fail, answer slowly, trickle, redirect or serve a body
    given as it is."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.requests = 0
        """Requests for the key set."""
        self.discoveries = 0
        """Requests for the discovery document."""
        self.failing = False
        self.delay = 0.0
        """Seconds to wait before answering."""
        self.trickle: float | None = None
        """Send the answer a byte at a time, this many seconds apart."""
        self.redirect: str | None = None
        """Answer 302 to this location instead."""
        self.body: bytes | None = None
        """Serve this as the key set instead of ``keys``."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                discovery = self.path.endswith("/.well-known/openid-configuration")
                if discovery:
                    server.discoveries += 1
                else:
                    server.requests += 1
                time.sleep(server.delay)
                if server.failing:
                    self.send_error(500)
                    return
                if server.redirect is not None:
                    self.send_response(302)
                    self.send_header("Location", server.redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if discovery:
                    body = json.dumps({"issuer": server.issuer, "jwks_uri": server.url}).encode()
                elif server.body is not None:
                    body = server.body
                else:
                    body = json.dumps({"keys": [k.jwk() for k in server.keys]}).encode()
                if server.trickle is None:
                    send_json(self, body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for index in range(len(body)):
                        self.wfile.write(body[index : index + 1])
                        self.wfile.flush()
                        time.sleep(server.trickle)
                except OSError:
                    pass  # the fetch gave up: the point of the test

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        base = f"http://127.0.0.1:{self._http.server_address[1]}"
        self.url = f"{base}/realms/test/certs"
        self.issuer = f"{base}/realms/test"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def rotate(self, *keys: SigningKey) -> None:
        """Serve these keys from now on."""
        self.keys = list(keys)


@contextmanager
def jwks_server(*keys: SigningKey) -> Iterator[JWKSServer]:
    """A running :class:`JWKSServer` for the block."""
    server = JWKSServer(*keys)
    server._thread.start()
    try:
        yield server
    finally:
        server._http.shutdown()
        server._http.server_close()
