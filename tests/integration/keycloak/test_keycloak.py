"""A real Keycloak as the identity provider: its tokens verified through its JWKS, its
back-channel logouts and admin messages turned into revocations that three sidecars enforce.

The realm-wide revocations run last in this file: they revoke every older token of the
session's realm.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from jwt_revocation.producer import LogoutTokenVerifier, RevocationPublisher, SecurityEventReceiver
from jwt_revocation.shared import JWKSKeys
from tests.integration.conftest import BOOTSTRAP, CliRun
from tests.integration.jwks_server import send_json
from tests.integration.keycloak.conftest import (
    CLIENT,
    SECRET,
    TRIO_REFETCH_INTERVAL,
    Realm,
    Service,
    keycloak_verifier,
    next_second,
    outcomes,
    until_rejected,
)
from tests.integration.outbox.conftest import read_topic
from tests.support import post_logout, wait_for


def _header(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


def _report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n    {text}")


def test_a_keycloak_access_token_is_accepted_by_every_service_through_the_jwks(
    realm: Realm, trio: list[Service]
) -> None:
    name, sub = realm.user()
    tokens = realm.sign_in(name)

    assert _header(tokens.access_token)["alg"] == "RS256"
    assert outcomes(trio, tokens.access_token) == ["accepted"] * 3
    assert trio[0].decide(tokens.access_token).claims["sub"] == sub


def test_logging_out_of_one_session_revokes_its_tokens_everywhere_and_no_others(
    realm: Realm, trio: list[Service], receiver: CliRun, capsys: pytest.CaptureFixture[str]
) -> None:
    name, _ = realm.user()
    laptop = realm.sign_in(name)
    # The laptop's session mints more tokens: a refreshed access token, a rotated refresh token.
    refreshed = realm.kc.refresh(realm.name, CLIENT, SECRET, laptop.refresh_token)
    phone = realm.sign_in(name)
    laptop_tokens = [laptop.access_token, refreshed.access_token]
    assert outcomes(trio, refreshed.access_token) == ["accepted"] * 3

    started = time.perf_counter()
    realm.kc.log_out(realm.name, CLIENT, SECRET, refreshed.refresh_token)
    answered = time.perf_counter() - started
    until_rejected(trio, laptop_tokens)
    everywhere = time.perf_counter() - started

    for token in laptop_tokens:
        assert outcomes(trio, token) == ["session_revoked"] * 3
    assert outcomes(trio, phone.access_token) == ["accepted"] * 3
    _report(
        capsys,
        f"Keycloak logout call to rejection by all three sidecars: {everywhere * 1000:.0f} ms "
        f"(Keycloak answered the logout after {answered * 1000:.0f} ms)",
    )


def test_an_admin_logging_a_user_out_revokes_every_token_of_the_user(
    realm: Realm, trio: list[Service], receiver: CliRun
) -> None:
    name, sub = realm.user()
    other, _ = realm.user()
    session = realm.sign_in(name)
    refreshed = realm.kc.refresh(realm.name, CLIENT, SECRET, session.refresh_token)
    bystander = realm.sign_in(other)

    realm.kc.log_out_user(realm.name, sub)

    until_rejected(trio, [session.access_token, refreshed.access_token])
    assert outcomes(trio, bystander.access_token) == ["accepted"] * 3


@pytest.fixture
def user_scope_client(realm: Realm, tmp_path: Path) -> Iterator[str]:
    """A second client of the realm whose receiver revokes the whole user on any logout."""
    client = f"strict-{uuid.uuid4().hex[:6]}"
    verifier = LogoutTokenVerifier(issuer=realm.issuer, client_id=client, jwks_url=realm.jwks_url)
    with RevocationPublisher(BOOTSTRAP, realm.topic, issuer="strict-receiver") as publisher:
        server = SecurityEventReceiver(
            publisher,
            None,
            max_token_lifetime="1h",
            store=tmp_path / "receiver.db",
            port=0,
            logout=verifier,
            logout_scope="user",
        )
        server.start()
        try:
            url = "http://{}:{}/backchannel-logout".format(*server.address)
            realm.kc.create_client(realm.name, client, SECRET, backchannel_logout_url=url)
            yield client
        finally:
            server.stop()


def test_keycloaks_admin_logout_of_several_sessions_reaches_a_user_scope_receiver(
    realm: Realm, trio: list[Service], user_scope_client: str
) -> None:
    # Keycloak 26.5.6 notifies each client once per admin logout, naming one of the user's
    # sessions (AuthenticationManager.createOrJoinLogoutSession reuses the request's logout
    # session, so the client counts as logged out after the first). A receiver with
    # logout_scope="user" revokes every token of the user it names.
    name, sub = realm.user()
    other, _ = realm.user()
    sessions = [
        realm.kc.sign_in(realm.name, user_scope_client, SECRET, name, f"{name}-pw")
        for _ in range(2)
    ]
    bystander = realm.kc.sign_in(realm.name, user_scope_client, SECRET, other, f"{other}-pw")

    realm.kc.log_out_user(realm.name, sub)

    until_rejected(trio, [s.access_token for s in sessions])
    assert outcomes(trio, sessions[0].access_token) == ["user_tokens_revoked"] * 3
    assert outcomes(trio, bystander.access_token) == ["accepted"] * 3


class _CountingProxy:
    """Serves one upstream URL (the realm's JWKS) and counts how often it was fetched."""

    def __init__(self, upstream: str) -> None:
        self.fetches = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.fetches += 1
                with urllib.request.urlopen(upstream, timeout=10) as answer:
                    send_json(self, answer.read())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks_proxy(realm: Realm) -> Iterator[_CountingProxy]:
    proxy = _CountingProxy(realm.jwks_url)
    yield proxy
    proxy.close()


def _with_kid(token: str, kid: str) -> str:
    """The token with another ``kid`` in its header (its signature no longer matches)."""
    header = base64.urlsafe_b64encode(json.dumps({**_header(token), "kid": kid}).encode()).rstrip(
        b"="
    )
    return header.decode() + token[token.index(".") :]


def test_a_rotated_realm_key_is_followed_without_restart_and_made_up_kids_are_rate_limited(
    realm: Realm,
    trio: list[Service],
    receiver: CliRun,
    jwks_proxy: _CountingProxy,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, _ = realm.user()
    before = realm.sign_in(name)
    # A fourth verifier fetches its keys through a proxy that counts the fetches.
    keys = JWKSKeys(jwks_proxy.url, refetch_interval=2)
    counted = keycloak_verifier(trio[0].sidecar, realm, key_resolver=keys)
    assert counted.decide(before.access_token).accepted
    assert jwks_proxy.fetches == 1

    new_kid = realm.kc.add_rsa_key(realm.name, priority=500)
    rotated = time.monotonic()
    after = realm.sign_in(name)
    assert _header(after.access_token)["kid"] == new_kid != _header(before.access_token)["kid"]

    # Every running service comes to verify the new key's tokens within one refetch interval
    # (the trio's TRIO_REFETCH_INTERVAL; 30 s by default) of its last fetch, and the old key's
    # tokens still.
    wait_for(
        lambda: outcomes(trio, after.access_token) == ["accepted"] * 3,
        timeout=TRIO_REFETCH_INTERVAL + 15,
        interval=0.2,
    )
    followed = time.monotonic() - rotated
    assert outcomes(trio, before.access_token) == ["accepted"] * 3
    wait_for(lambda: counted.decide(after.access_token).accepted, timeout=10, interval=0.1)
    fetched = jwks_proxy.fetches

    # A flood of made-up kids for 2.5 intervals: every token refused, one fetch per interval.
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < 2.5 * keys.refetch_interval:
        verdict = counted.decide(_with_kid(after.access_token, uuid.uuid4().hex))
        assert verdict.outcome == "rejected"
        sent += 1
        time.sleep(0.001)
    elapsed = time.monotonic() - started
    allowed = 1 + int(elapsed / keys.refetch_interval)
    assert 1 <= jwks_proxy.fetches - fetched <= allowed
    _report(
        capsys,
        f"the three services accepted the rotated key's token {followed:.1f} s after the "
        f"rotation; {sent} made-up kids in {elapsed:.2f} s caused {jwks_proxy.fetches - fetched} "
        f"JWKS fetch(es) (at most {allowed} allowed, interval {keys.refetch_interval:g} s)",
    )

    # The receiver follows the rotation too: Keycloak signs the logout token with the new key.
    realm.kc.log_out(realm.name, CLIENT, SECRET, after.refresh_token)
    until_rejected(trio, [after.access_token])


# -- logout tokens that must be refused --------------------------------------------------


class _Capture:
    """A client's back-channel logout URL that keeps what Keycloak sends it."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                capture.tokens.extend(urllib.parse.parse_qs(body.decode())["logout_token"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/backchannel-logout"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_keycloak_tells_each_client_of_one_session_when_an_admin_ends_several(
    realm: Realm,
) -> None:
    # What the README says of Keycloak 26.5.6, and why logout_scope="user" exists: if a
    # Keycloak release sends one logout token per session, this fails and the README changes.
    capture = _Capture()
    try:
        client = f"capture-{uuid.uuid4().hex[:6]}"
        realm.kc.create_client(realm.name, client, SECRET, backchannel_logout_url=capture.url)
        name, sub = realm.user()
        sessions = [
            realm.kc.sign_in(realm.name, client, SECRET, name, f"{name}-pw") for _ in range(3)
        ]
        realm.kc.log_out_user(realm.name, sub)  # answers after its back-channel calls
        # A later logout of a fourth session: once its token has arrived, so has every token
        # the admin's logout sent before it.
        later = realm.kc.sign_in(realm.name, client, SECRET, name, f"{name}-pw")
        realm.kc.log_out(realm.name, client, SECRET, later.refresh_token)
        wait_for(lambda: _sid(later.access_token) in {_sid(t) for t in capture.tokens})
        first = [t for t in capture.tokens if _sid(t) != _sid(later.access_token)]
        assert len(first) == 1
        assert {_sid(t) for t in first} < {_sid(s.access_token) for s in sessions}
    finally:
        capture.close()


def _sid(token: str) -> str:
    sid: str = jwt.decode(token, options={"verify_signature": False})["sid"]
    return sid


@pytest.fixture
def mirror_token(realm: Realm) -> Iterator[str]:
    """A real logout token Keycloak signed for another client of the realm (``mirror``)."""
    capture = _Capture()
    try:
        client = f"mirror-{uuid.uuid4().hex[:6]}"
        realm.kc.create_client(
            realm.name, client, "mirror-secret", backchannel_logout_url=capture.url
        )
        name, _ = realm.user()
        tokens = realm.kc.sign_in(realm.name, client, "mirror-secret", name, f"{name}-pw")
        realm.kc.log_out(realm.name, client, "mirror-secret", tokens.refresh_token)
        wait_for(lambda: capture.tokens, timeout=10)
        yield capture.tokens[0]
    finally:
        capture.close()


def test_forged_replayed_expired_and_wrong_audience_logout_tokens_publish_nothing(
    realm: Realm, topic: str, mirror_token: str, tmp_path: Path
) -> None:
    client = jwt.decode(mirror_token, options={"verify_signature": False})["aud"]
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.decode(mirror_token, options={"verify_signature": False})
    header = _header(mirror_token)

    def forged(**changes: Any) -> str:
        return jwt.encode({**claims, **changes}, forger, algorithm="RS256", headers=header)

    def receiver_for(client_id: str, **kwargs: Any) -> SecurityEventReceiver:
        verifier = LogoutTokenVerifier(
            issuer=realm.issuer, client_id=client_id, jwks_url=realm.jwks_url, **kwargs
        )
        return SecurityEventReceiver(
            publisher,
            None,
            max_token_lifetime="1h",
            store=tmp_path / f"{uuid.uuid4().hex}.db",
            port=0,
            logout=verifier,
        )

    with RevocationPublisher(BOOTSTRAP, topic, issuer="tests") as publisher:
        mirror = receiver_for(client)
        later = receiver_for(client, clock=lambda: time.time() + 3600)
        orders = receiver_for(CLIENT)
        for server in (mirror, later, orders):
            server.start()
        try:
            url = "http://{}:{}/backchannel-logout"
            refused = {
                "forged signature": (mirror, forged()),
                "forged with a nonce": (mirror, forged(nonce="n")),
                "alg none": (mirror, jwt.encode(claims, "", algorithm="none")),
                "tampered claims": (mirror, _tampered(mirror_token, sid="another-session")),
                "expired": (later, mirror_token),
                "wrong audience": (orders, mirror_token),
                "not a token": (mirror, "not-a-token"),
            }
            for what, (server, token) in refused.items():
                status, headers, body = post_logout(url.format(*server.address), token)
                assert status == 400, what
                assert body["error"] == "invalid_request", what
                assert headers["Cache-Control"] == "no-store", what
            assert read_topic(topic).events == []

            # The real token, twice: published once, and the repeat answered as a success.
            for _ in range(2):
                status, headers, body = post_logout(url.format(*mirror.address), mirror_token)
                assert (status, body, headers["Cache-Control"]) == (200, None, "no-store")
            wait_for(lambda: mirror.relay.status()["pending_rows"] == 0)
            (event,) = read_topic(topic).events
            assert event.type == "session_revoked"
            assert event.event_id == claims["jti"]
            assert mirror.logout_counts[("backchannel", "duplicate")] == 1
            metrics = urllib.request.urlopen(
                "http://{}:{}/metrics".format(*mirror.address), timeout=10
            ).read()
            assert (
                b'jwt_revocation_receiver_logouts_total{kind="backchannel",outcome="duplicate"} 1.0'
                in metrics
            )

            status, _, body = post_logout(url.format(*mirror.address), mirror_token, "text/plain")
            assert status == 400
        finally:
            for server in (mirror, later, orders):
                server.stop()


def _tampered(token: str, **changes: Any) -> str:
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body = base64.urlsafe_b64encode(json.dumps({**claims, **changes}).encode()).rstrip(b"=")
    return f"{head}.{body.decode()}.{signature}"


# -- realm-wide: last, as they revoke every older token of the realm ------------------------


def test_an_admins_realm_push_revocation_and_logout_all_reach_every_sidecar(
    realm: Realm, trio: list[Service], receiver: CliRun
) -> None:
    name, _ = realm.user()
    old = realm.sign_in(name)
    assert outcomes(trio, old.access_token) == ["accepted"] * 3

    answer = realm.kc.push_revocation(realm.name)
    assert answer["successRequests"] == [f"{realm.receiver_url}/keycloak"]
    until_rejected(trio, [old.access_token])
    assert outcomes(trio, old.access_token) == ["all_tokens_revoked"] * 3

    next_second()
    new = realm.sign_in(name)
    assert outcomes(trio, new.access_token) == ["accepted"] * 3

    # "Sign out all active sessions": Keycloak's k_logout carries the new realm not-before.
    next_second()
    answer = realm.kc.log_out_all(realm.name)
    assert answer["successRequests"] == [f"{realm.receiver_url}/keycloak"]
    until_rejected(trio, [new.access_token])
