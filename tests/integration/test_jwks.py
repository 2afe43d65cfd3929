"""Keys from a JWKS endpoint: a real local HTTP server serves a key set the tests rotate.

The verifiers read an in-memory revocation source, but for the integrations (FastAPI, Flask,
the CLI's HTTP sidecar), which run over a sidecar on the real broker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest

from jwt_revocation.consumer import (
    InMemoryRevocations,
    RevocationVerifier,
    SidecarUnavailableError,
    TokenRevokedError,
)
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import ConfigurationError, JWKSKeys, SessionRevoked, UnknownKeyError
from tests.integration.conftest import SidecarFactory, running_cli
from tests.integration.jwks_server import JWKSServer, SigningKey, claims, jwks_server
from tests.integration.test_end_to_end import _no_sockets_from_this_thread
from tests.integration.test_http import _call
from tests.support import FakeClock, wait_for

K1, K2 = SigningKey("k1"), SigningKey("k2")


@pytest.fixture
def server() -> Iterator[JWKSServer]:
    with jwks_server(K1) as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def revocations() -> InMemoryRevocations:
    return InMemoryRevocations(max_token_lifetime="1h")


@pytest.fixture
def keys(server: JWKSServer, clock: FakeClock) -> JWKSKeys:
    """The server's key set, refetched for an unknown kid at most every 30 s of ``clock``."""
    return JWKSKeys(server.url, refetch_interval=30, clock=clock)


def _verifier(
    revocations: InMemoryRevocations, keys: JWKSKeys, **kwargs: object
) -> RevocationVerifier:
    return RevocationVerifier(revocations, key_resolver=keys, algorithms=["RS256"], **kwargs)  # type: ignore[arg-type]


def test_a_known_kid_is_verified_without_a_socket_after_the_first_fetch(
    server: JWKSServer, revocations: InMemoryRevocations
) -> None:
    verifier = RevocationVerifier(
        revocations, jwks_url=server.url, algorithms=["RS256"], cache_size=0
    )
    assert verifier.verify(K1.sign(claims()))["sub"] == "alice"
    assert server.requests == 1

    tokens = [K1.sign(claims(f"user-{i}")) for i in range(50)]
    with _no_sockets_from_this_thread() as calls:
        for token in tokens:
            verifier.verify(token)
    assert calls == []
    assert server.requests == 1


def test_a_rotation_at_the_provider_is_followed_without_a_restart(
    server: JWKSServer, revocations: InMemoryRevocations, clock: FakeClock, keys: JWKSKeys
) -> None:
    verifier = _verifier(revocations, keys)
    old = K1.sign(claims())
    assert verifier.verify(old)["sub"] == "alice"  # and now cached as verified

    server.rotate(K1, K2)  # the provider adds a key, then signs with it
    new = K2.sign(claims("bob"))
    clock.advance(31)
    assert verifier.verify(new)["sub"] == "bob"
    assert server.requests == 2
    assert verifier.verify(old)["sub"] == "alice"  # both keys are served

    server.rotate(K2)  # the old key is retired
    clock.advance(31)
    with pytest.raises(UnknownKeyError):
        verifier.verify(K1.sign(claims(), kid="k1-never-seen"))  # an unknown kid: one refetch
    assert keys.kids == ["k2"]
    with pytest.raises(UnknownKeyError, match="kid 'k1'"):
        verifier.verify(old)  # the cache forgot the tokens of the retired key
    assert verifier.verify(new)["sub"] == "bob"


def test_a_flood_of_made_up_kids_costs_one_fetch_per_interval(
    server: JWKSServer, revocations: InMemoryRevocations, clock: FakeClock, keys: JWKSKeys
) -> None:
    verifier = _verifier(revocations, keys)
    verifier.verify(K1.sign(claims()))
    forged = [K1.sign(claims(), kid=uuid.uuid4().hex) for _ in range(300)]

    for token in forged[:100]:
        with pytest.raises(UnknownKeyError):
            verifier.verify(token)
    assert server.requests == 1  # the first fetch was less than 30 s ago

    clock.advance(30)
    for token in forged[100:]:
        with pytest.raises(jwt.InvalidTokenError):
            verifier.verify(token)
    assert server.requests == 2
    assert keys.fetches == 2


def test_without_any_key_set_verification_is_unavailable_not_a_rejection(
    server: JWKSServer, revocations: InMemoryRevocations, clock: FakeClock, keys: JWKSKeys
) -> None:
    server.failing = True
    verifier = _verifier(revocations, keys)
    token = K1.sign(claims())

    for _ in range(20):
        with pytest.raises(SidecarUnavailableError) as caught:
            verifier.verify(token)
        assert caught.value.reason == "keys_unavailable"
        assert not isinstance(caught.value, jwt.InvalidTokenError)
    assert server.requests == 1  # the provider is not hammered while it is down
    assert verifier.decide(token).outcome == "unavailable"

    server.failing = False
    clock.advance(30)
    assert verifier.verify(token)["sub"] == "alice"


def test_a_failed_refetch_keeps_the_keys_it_had(
    server: JWKSServer, revocations: InMemoryRevocations, clock: FakeClock, keys: JWKSKeys
) -> None:
    verifier = _verifier(revocations, keys, cache_size=0)
    verifier.verify(K1.sign(claims()))
    server.failing = True
    clock.advance(30)

    with pytest.raises(UnknownKeyError):
        verifier.verify(K2.sign(claims()))
    assert server.requests == 2
    assert verifier.verify(K1.sign(claims()))["sub"] == "alice"


def test_an_old_key_set_is_refreshed_in_the_background(
    server: JWKSServer, revocations: InMemoryRevocations, clock: FakeClock
) -> None:
    keys = JWKSKeys(server.url, max_age=300, clock=clock)
    verifier = _verifier(revocations, keys, cache_size=0)
    verifier.verify(K1.sign(claims()))
    server.rotate(K2)  # the provider retires k1 at once (a compromised key)
    clock.advance(301)

    with _no_sockets_from_this_thread() as calls:
        assert verifier.verify(K1.sign(claims()))["sub"] == "alice"  # the kept set, at once
    assert calls == []
    wait_for(lambda: keys.kids == ["k2"])
    assert server.requests == 2
    with pytest.raises(UnknownKeyError):
        verifier.verify(K1.sign(claims()))


def test_the_key_set_enforces_revocations_as_a_static_key_does(
    server: JWKSServer, revocations: InMemoryRevocations
) -> None:
    verifier = RevocationVerifier(revocations, jwks_url=server.url, algorithms=["RS256"])
    assert verifier.load_keys()
    token = K1.sign(claims(sid="laptop"))
    decoded = jwt.decode(token, options={"verify_signature": False})
    later = datetime.fromtimestamp(decoded["iat"] + 1, UTC)
    revocations.apply(
        SessionRevoked(
            issuer="auth", occurred_at=later, user_id="alice", session_id="laptop", not_before=later
        )
    )

    with pytest.raises(TokenRevokedError) as caught:
        verifier.verify(token)
    assert caught.value.reason == "session_revoked"


def test_a_token_without_kid_takes_the_only_key(
    server: JWKSServer, revocations: InMemoryRevocations
) -> None:
    verifier = RevocationVerifier(revocations, jwks_url=server.url, algorithms=["RS256"])
    token = jwt.encode(claims(), K1.private, algorithm="RS256")

    assert verifier.verify(token)["sub"] == "alice"
    server.rotate(K1, K2)
    assert JWKSKeys(server.url).refresh()
    other = RevocationVerifier(revocations, jwks_url=server.url, algorithms=["RS256"])
    with pytest.raises(UnknownKeyError, match="no kid"):
        other.verify(token)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"key": "secret", "jwks_url": "http://127.0.0.1:1/certs"},
        {"jwks_url": "file:///etc/passwd"},
    ],
    ids=["none", "two", "file-url"],
)
def test_a_verifier_needs_exactly_one_source_of_keys(
    revocations: InMemoryRevocations, kwargs: dict[str, str]
) -> None:
    with pytest.raises(ConfigurationError):
        RevocationVerifier(revocations, algorithms=["RS256"], **kwargs)  # type: ignore[arg-type]


def test_a_custom_key_resolver_is_called_with_the_header(
    revocations: InMemoryRevocations,
) -> None:
    seen: list[object] = []

    def resolve(header: object) -> object:
        seen.append(dict(header))  # type: ignore[call-overload]
        return K1.private.public_key()

    verifier = RevocationVerifier(revocations, key_resolver=resolve, algorithms=["RS256"])

    assert verifier.verify(K1.sign(claims()))["sub"] == "alice"
    assert seen == [{"alg": "RS256", "kid": "k1", "typ": "JWT"}]


# -- the integrations: FastAPI, Flask, the HTTP sidecar --------------------------------------


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_fastapi_verifies_with_the_jwks_fetched_at_start(
    server: JWKSServer, make_sidecar: SidecarFactory, publisher: RevocationPublisher
) -> None:
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from jwt_revocation.consumer.fastapi import BearerClaims, sidecar_lifespan

    sidecar = make_sidecar(start=False)
    verifier = RevocationVerifier(sidecar, jwks_url=server.url, algorithms=["RS256"])
    app = FastAPI(lifespan=sidecar_lifespan(sidecar, verifiers=[verifier]))
    claims_of = BearerClaims(verifier)

    @app.get("/me")
    def me(claims: dict[str, Any] = Depends(claims_of)) -> dict[str, Any]:  # noqa: B008
        return {"sub": claims["sub"]}

    token = K1.sign(claims(sid="laptop"))
    with TestClient(app) as client:
        assert server.requests == 1  # fetched by the lifespan, before any request
        assert client.get("/me", headers=_bearer(token)).json() == {"sub": "alice"}
        publisher.logout_session(user_id="alice", session_id="laptop")
        wait_for(lambda: client.get("/me", headers=_bearer(token)).status_code == 401)
        assert client.get("/me", headers=_bearer(K1.sign(claims("bob")))).status_code == 200
    assert server.requests == 1


def test_flask_verifies_with_the_jwks_fetched_at_init(
    server: JWKSServer, make_sidecar: SidecarFactory
) -> None:
    from flask import Flask, g

    from jwt_revocation.consumer.flask import FlaskRevocation

    sidecar = make_sidecar(start=False)
    revocation = FlaskRevocation(
        RevocationVerifier(sidecar, jwks_url=server.url, algorithms=["RS256"])
    )
    app = Flask(__name__)
    revocation.init_app(app)
    assert server.requests == 1

    @app.get("/me")
    @revocation.required
    def me() -> dict[str, Any]:
        return {"sub": g.claims["sub"]}

    client = app.test_client()
    assert client.get("/me", headers=_bearer(K1.sign(claims()))).get_json() == {"sub": "alice"}
    assert client.get("/me", headers=_bearer(K2.sign(claims()))).status_code == 401  # unknown kid


def test_the_cli_sidecar_checks_tokens_with_the_jwks_url(server: JWKSServer, topic: str) -> None:
    with running_cli(
        "--topic", topic, "sidecar", "--http", "127.0.0.1:0", JWT_REVOCATION_JWKS_URL=server.url
    ) as run:
        url = "http://" + run.line().split(" on ")[1].strip()
        wait_for(lambda: _call(f"{url}/readyz")[0] == 200, timeout=60)
        assert _call(f"{url}/v1/check", {"token": K1.sign(claims())})[1]["verdict"] == "accepted"
        forged = _call(f"{url}/v1/check", {"token": K2.sign(claims(), kid="k1")})
        assert forged[1] == {
            "verdict": "rejected",
            "reason": "InvalidSignatureError",
            "detail": "Signature verification failed",
        }
    assert run.returncode == 0
