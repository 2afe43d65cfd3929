"""FastAPI and Flask apps, run in-process with their test clients, against the real broker."""

from __future__ import annotations

from typing import Any

import jwt
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from flask import Flask, g

from jwt_revocation.consumer import RevocationSidecar, RevocationVerifier
from jwt_revocation.consumer.fastapi import BearerClaims, RevocationMiddleware, sidecar_lifespan
from jwt_revocation.consumer.flask import FlaskRevocation
from jwt_revocation.producer import RevocationPublisher
from tests.integration.conftest import KEY, SidecarFactory, issue, verifier_for
from tests.support import wait_for


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _fastapi_app(sidecar: RevocationSidecar) -> FastAPI:
    verifier = verifier_for(sidecar)
    app = FastAPI(lifespan=sidecar_lifespan(sidecar))
    claims_of = BearerClaims(verifier)

    @app.get("/me")
    def me(claims: dict[str, Any] = Depends(claims_of)) -> dict[str, Any]:  # noqa: B008
        return {"sub": claims["sub"]}

    return app


def test_fastapi_dependency_refuses_a_revoked_token(
    make_sidecar: SidecarFactory, publisher: RevocationPublisher
) -> None:
    sidecar = make_sidecar(start=False)
    token, other = issue("olga"), issue("pat")

    with TestClient(_fastapi_app(sidecar)) as client:
        assert sidecar.ready  # the lifespan started it, caught up
        assert client.get("/me", headers=_bearer(token)).json() == {"sub": "olga"}

        publisher.revoke_token(jwt.decode(token, KEY, algorithms=["HS256"]))

        wait_for(lambda: client.get("/me", headers=_bearer(token)).status_code == 401)
        refused = client.get("/me", headers=_bearer(token))
        assert (
            refused.json()["detail"]["error_description"] == "the token is revoked (token_revoked)"
        )
        assert refused.headers["WWW-Authenticate"].startswith(
            'Bearer realm="api", error="invalid_token"'
        )
        assert client.get("/me", headers=_bearer(other)).status_code == 200
        missing = client.get("/me")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="api"'
        assert client.get("/me", headers=_bearer("garbage")).status_code == 401
    assert sidecar.status.value == "stopped"  # the lifespan stopped it


def test_fastapi_answers_503_when_the_sidecar_cannot_decide(make_sidecar: SidecarFactory) -> None:
    sidecar = make_sidecar()
    app = _fastapi_app(sidecar)
    sidecar.stop()

    answer = TestClient(app).get("/me", headers=_bearer(issue("quinn")))  # no lifespan run

    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["detail"]["error"] == "temporarily_unavailable"


def test_asgi_middleware_guards_every_path_but_the_excluded(
    make_sidecar: SidecarFactory, publisher: RevocationPublisher
) -> None:
    sidecar = make_sidecar()
    app = FastAPI()
    app.add_middleware(RevocationMiddleware, verifier=verifier_for(sidecar))

    @app.get("/me")
    def me(request: Request) -> dict[str, Any]:
        return {"sub": request.state.claims["sub"]}

    @app.get("/healthz")
    def health() -> dict[str, str]:
        return {"status": "alive"}

    token = issue("rita")
    client = TestClient(app)
    assert client.get("/me", headers=_bearer(token)).json() == {"sub": "rita"}
    assert client.get("/healthz").status_code == 200
    assert client.get("/me").status_code == 401

    publisher.password_changed(user_id="rita")

    wait_for(lambda: client.get("/me", headers=_bearer(token)).status_code == 401)
    assert (
        "user_tokens_revoked"
        in client.get("/me", headers=_bearer(token)).json()["error_description"]
    )


def test_flask_extension_and_decorator(
    make_sidecar: SidecarFactory, publisher: RevocationPublisher
) -> None:
    sidecar = make_sidecar(start=False)
    revocation = FlaskRevocation(RevocationVerifier(sidecar, key=KEY, algorithms=["HS256"]))
    app = Flask(__name__)
    revocation.init_app(app)

    @app.get("/me")
    @revocation.required
    def me() -> dict[str, Any]:
        return {"sub": g.claims["sub"]}

    assert sidecar.ready  # init_app started it, caught up
    client = app.test_client()
    token = issue("sam")
    assert client.get("/me", headers=_bearer(token)).get_json() == {"sub": "sam"}

    publisher.user_deleted(user_id="sam")

    wait_for(lambda: client.get("/me", headers=_bearer(token)).status_code == 401)
    refused = client.get("/me", headers=_bearer(token))
    assert refused.get_json()["error_description"] == "the token is revoked (user_deleted)"
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert client.get("/me").status_code == 401

    sidecar.stop()
    unavailable = client.get("/me", headers=_bearer(issue("tom")))
    assert unavailable.status_code == 503
    assert app.extensions["jwt_revocation"] is revocation
