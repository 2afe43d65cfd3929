"""Keys from a JWKS endpoint: a real local HTTP server serves a key set the tests rotate.

The verifiers read an in-memory revocation source, but for the integrations (FastAPI, Flask,
the CLI's HTTP sidecar), which run over a sidecar on the real broker.
"""

from __future__ import annotations

import json
import logging
import threading
import time
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
    assert verifier.load_keys()
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
    assert keys.refresh()
    old = K1.sign(claims())
    assert verifier.verify(old)["sub"] == "alice"  # and now cached as verified

    server.rotate(K1, K2)  # the provider adds a key, then signs with it
    new = K2.sign(claims("bob"))
    clock.advance(31)
    with pytest.raises(UnknownKeyError):  # answered at once; the refetch runs meanwhile
        verifier.verify(new)
    wait_for(lambda: keys.kids == ["k1", "k2"])
    assert verifier.verify(new)["sub"] == "bob"
    assert server.requests == 2
    assert verifier.verify(old)["sub"] == "alice"  # both keys are served

    server.rotate(K2)  # the old key is retired
    clock.advance(31)
    with pytest.raises(UnknownKeyError):
        verifier.verify(K1.sign(claims(), kid="k1-never-seen"))  # an unknown kid: one refetch
    wait_for(lambda: keys.kids == ["k2"])
    with pytest.raises(UnknownKeyError, match="kid 'k1'"):
        verifier.verify(old)  # the cache forgot the tokens of the retired key
    assert verifier.verify(new)["sub"] == "bob"


def test_a_flood_of_made_up_kids_costs_one_fetch_per_interval(
    server: JWKSServer, revocations: InMemoryRevocations, clock: FakeClock, keys: JWKSKeys
) -> None:
    verifier = _verifier(revocations, keys)
    assert keys.refresh()
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
    assert keys.fetches == 2  # counted when a fetch starts: one for the 200 tokens
    wait_for(lambda: server.requests == 2)


def test_without_any_key_set_verification_is_unavailable_not_a_rejection(
    server: JWKSServer, revocations: InMemoryRevocations, clock: FakeClock, keys: JWKSKeys
) -> None:
    server.failing = True
    verifier = _verifier(revocations, keys)
    token = K1.sign(claims())
    assert not keys.refresh()

    for _ in range(20):
        with pytest.raises(SidecarUnavailableError) as caught:
            verifier.verify(token)
        assert caught.value.reason == "keys_unavailable"
        assert not isinstance(caught.value, jwt.InvalidTokenError)
    assert verifier.decide(token).outcome == "unavailable"
    assert keys.fetches == 1  # the provider is not hammered while it is down
    assert server.requests == 1

    server.failing = False
    clock.advance(30)
    assert verifier.decide(token).outcome == "unavailable"  # the answer never waits
    wait_for(lambda: verifier.decide(token).accepted)
    assert keys.fetches == 2


def test_a_failed_refetch_keeps_the_keys_it_had(
    server: JWKSServer, revocations: InMemoryRevocations, clock: FakeClock, keys: JWKSKeys
) -> None:
    verifier = _verifier(revocations, keys, cache_size=0)
    assert keys.refresh()
    server.failing = True
    clock.advance(30)

    with pytest.raises(UnknownKeyError):
        verifier.verify(K2.sign(claims()))
    assert keys.fetches == 2
    wait_for(lambda: server.requests == 2)  # the refetch was answered 500
    assert keys.kids == ["k1"]
    assert verifier.verify(K1.sign(claims()))["sub"] == "alice"


def test_an_old_key_set_is_refreshed_in_the_background(
    server: JWKSServer, revocations: InMemoryRevocations, clock: FakeClock
) -> None:
    keys = JWKSKeys(server.url, max_age=300, clock=clock)
    verifier = _verifier(revocations, keys, cache_size=0)
    assert keys.refresh()
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

    assert verifier.load_keys()
    assert verifier.verify(token)["sub"] == "alice"
    server.rotate(K1, K2)
    other = RevocationVerifier(revocations, jwks_url=server.url, algorithms=["RS256"])
    assert other.load_keys()
    with pytest.raises(UnknownKeyError, match="no kid"):
        other.verify(token)


def test_a_fetch_has_one_deadline_for_all_its_reads(
    server: JWKSServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.trickle = 0.2  # a byte every 0.2 s: no read waits 1 s, the whole would take minutes
    keys = JWKSKeys(server.url, timeout=1)

    with caplog.at_level(logging.WARNING, logger="jwt_revocation"):
        started = time.monotonic()
        assert not keys.refresh()
        wait_for(lambda: "key set not fetched" in caplog.text)
        elapsed = time.monotonic() - started

    assert "TimeoutError: the key set did not arrive within 1 s" in caplog.text
    assert elapsed < 5  # cut at the deadline, not minutes later
    assert server.requests == 1


def test_a_key_set_with_malformed_keys_keeps_the_usable_ones(
    server: JWKSServer, caplog: pytest.LogCaptureFixture
) -> None:
    deep: Any = "x"
    for _ in range(200):
        deep = {"n": deep}
    server.body = json.dumps(
        {
            "keys": [
                {**K2.jwk(), "kid": {"nested": "object"}},
                K1.jwk(),
                {"kty": "XYZ", "kid": "unknown-kty"},
                {**K2.jwk(), "kid": "k2", "n": deep},
                "not a key",
                {**K2.jwk(), "kid": 7},
                {**K2.jwk(), "kid": "k1"},  # a second key with a kid already taken
                {**K2.jwk(), "kid": "enc", "use": "enc"},  # not a signing key: left out quietly
            ]
        }
    ).encode()
    keys = JWKSKeys(server.url)

    with caplog.at_level(logging.WARNING, logger="jwt_revocation"):
        assert keys.refresh()

    assert keys.kids == ["k1"]
    dropped = [r.getMessage() for r in caplog.records if "key dropped" in r.getMessage()]
    assert len(dropped) == 6, dropped
    assert any("its kid is a dict, not a string" in line for line in dropped)
    assert any("key 2 (kid 'unknown-kty')" in line for line in dropped)
    assert keys(jwt.get_unverified_header(K1.sign(claims()))).key_id == "k1"


@pytest.mark.parametrize("case", ["nested", "oversized", "no-usable-key", "redirect", "not-json"])
def test_a_key_set_that_cannot_be_used_is_a_failed_fetch_never_a_crash(
    server: JWKSServer, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    if case == "nested":
        server.body = b'{"keys": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    elif case == "oversized":
        server.body = json.dumps({"keys": [K1.jwk()], "pad": "x" * (1024 * 1024)}).encode()
    elif case == "no-usable-key":
        server.body = json.dumps({"keys": [{"kty": "XYZ", "kid": "a"}]}).encode()
    elif case == "redirect":
        server.redirect = "http://127.0.0.2:9/certs"
    else:
        server.body = b"<html>"
    keys = JWKSKeys(server.url)

    with caplog.at_level(logging.WARNING, logger="jwt_revocation"):
        assert not keys.refresh()

    assert keys.kids == []
    assert any("key set not fetched" in r.getMessage() for r in caplog.records)
    with pytest.raises(SidecarUnavailableError):
        keys({"kid": "k1"})
    if case == "redirect":
        assert "redirects are not followed" in caplog.text


def test_keys_found_through_the_issuers_discovery_document(server: JWKSServer) -> None:
    keys = JWKSKeys(issuer=server.issuer)
    assert keys.url is None

    assert keys.refresh()

    assert keys.url == server.url
    assert keys.kids == ["k1"]
    assert (server.discoveries, server.requests) == (1, 1)


def test_a_failed_discovery_is_rate_limited_and_follows_no_redirect(
    server: JWKSServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    server.redirect = "http://127.0.0.2:9/.well-known/openid-configuration"
    keys = JWKSKeys(issuer=server.issuer, refetch_interval=1, clock=clock)
    header = jwt.get_unverified_header(K1.sign(claims()))

    with caplog.at_level(logging.WARNING, logger="jwt_revocation"):
        for _ in range(200):
            with pytest.raises(SidecarUnavailableError):
                keys(header)
        wait_for(lambda: "key set not fetched" in caplog.text)
    assert keys.fetches == 1
    assert server.discoveries == 1
    assert "redirects are not followed" in caplog.text

    server.redirect = None
    clock.advance(1)
    with pytest.raises(SidecarUnavailableError):
        keys(header)
    wait_for(lambda: keys.kids == ["k1"])
    assert (server.discoveries, keys.fetches) == (2, 2)


def test_with_no_key_set_a_waiting_caller_is_answered_once_the_attempt_allowed_failed(
    server: JWKSServer,
) -> None:
    server.failing = True  # the provider's discovery document answers 500
    keys = JWKSKeys(issuer=server.issuer, refetch_interval=60)
    header = jwt.get_unverified_header(K1.sign(claims()))

    started = time.monotonic()
    for _ in range(200):
        with pytest.raises(SidecarUnavailableError):
            keys.wait_for_key(header, timeout=5)
    elapsed = time.monotonic() - started

    # The first waited for its attempt; the others for nothing (each would wait 5 s otherwise).
    assert elapsed < 5
    assert server.discoveries == keys.fetches == 1


def test_a_waiting_caller_finds_a_key_added_after_the_last_fetch(server: JWKSServer) -> None:
    keys = JWKSKeys(server.url, refetch_interval=0.5, max_waiters=1)
    assert keys.refresh()
    server.rotate(K1, K2)  # added just after the fetch: a plain call refuses at once
    header = jwt.get_unverified_header(K2.sign(claims()))
    with pytest.raises(UnknownKeyError):
        keys(header)

    assert keys.wait_for_key(header).key_id == "k2"
    assert keys.fetches == 2


def test_only_max_waiters_callers_wait_for_a_key(server: JWKSServer) -> None:
    keys = JWKSKeys(server.url, refetch_interval=60, max_waiters=2)
    assert keys.refresh()  # no fetch may start for a minute: whoever waits, waits it all
    made_up = {"alg": "RS256", "kid": "made-up"}
    outcomes: list[tuple[str, float]] = []

    def ask() -> None:
        started = time.monotonic()
        try:
            keys.wait_for_key(made_up, timeout=2.0)
        except UnknownKeyError:
            outcomes.append(("refused", time.monotonic() - started))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    waited = sorted(elapsed for _, elapsed in outcomes)
    assert len(waited) == 6
    assert all(elapsed < 1.0 for elapsed in waited[:4]), waited  # answered at once
    assert all(elapsed >= 2.0 for elapsed in waited[4:]), waited  # the two that waited


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
