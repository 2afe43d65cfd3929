"""Flask: an extension that runs the sidecar with the app, and a decorator that needs a token.

Install with ``pip install "jwt-revocation[flask]"``::

    sidecar = RevocationSidecar("kafka:9092", max_token_lifetime="1h")
    revocation = FlaskRevocation(RevocationVerifier(sidecar, key=KEY, algorithms=["RS256"]))
    app = Flask(__name__)
    revocation.init_app(app)

    @app.get("/orders")
    @revocation.required
    def orders(): return {"user": g.claims["sub"]}

The same answers as the FastAPI integration: 401 with ``WWW-Authenticate: Bearer`` for a
missing, invalid or revoked token, 503 while the sidecar cannot decide.
"""

from __future__ import annotations

import atexit
import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from jwt_revocation.shared import DurationLike
from jwt_revocation.shared._duration import parse_seconds
from jwt_revocation.shared._extras import needs_extra

from ._sidecar import RevocationSidecar
from ._verdict import bearer_answer, bearer_token
from ._verifier import RevocationVerifier, require_verifier

with needs_extra("flask", __name__):
    from flask import Flask, Response, g, jsonify, request

F = TypeVar("F", bound=Callable[..., Any])


class FlaskRevocation:
    """Starts the verifier's sidecar with the app (stopped at exit); guards views."""

    def __init__(
        self,
        verifier: RevocationVerifier,
        app: Flask | None = None,
        *,
        start_timeout: DurationLike = 60.0,
    ) -> None:
        self.verifier = require_verifier(verifier)
        self.start_timeout = parse_seconds(start_timeout, name="start_timeout")
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register with ``app`` and start the sidecar, caught up, before it serves."""
        app.extensions["jwt_revocation"] = self
        self.verifier.load_keys()  # a JWKS is fetched before the first request, not during it
        source = self.verifier.source
        if isinstance(source, RevocationSidecar):
            source.start(timeout=self.start_timeout)
            atexit.register(source.stop)

    def required(self, view: F) -> F:
        """Run the view only for a request with an accepted bearer token, in ``g.claims``."""

        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            verdict = self.verifier.decide(bearer_token(request.headers.get("Authorization")))
            if not verdict.accepted:
                answer = bearer_answer(verdict)
                response: Response = jsonify(answer.body)
                response.status_code = answer.status
                response.headers.update(answer.headers)
                return response
            g.claims = dict(verdict.claims)
            return view(*args, **kwargs)

        return cast(F, guarded)
