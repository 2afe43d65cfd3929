"""``jwt-revocation demo --keycloak``: the same story with a real identity provider.

Keycloak (``scripts/services.sh keycloak-start``, 127.0.0.1:8180) issues the tokens. A fresh
realm gets a confidential client ``orders`` whose back-channel logout URL and admin URL point at
a receiver (OIDC Back-Channel Logout and Keycloak's admin messages), which publishes to Kafka.
Three services each embed a sidecar and verify Keycloak's RS256 tokens with keys from the
realm's JWKS. Alice logs out of her laptop, an admin logs Bob out, the realm's signing key is
rotated, and an admin revokes every older token of the realm; each step is shown as every
service's answer to every token, with the time from Keycloak's call to rejection everywhere.
The realm is deleted at the end.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import jwt

from jwt_revocation.consumer import RevocationSidecar, RevocationVerifier
from jwt_revocation.producer import LogoutTokenVerifier, RevocationPublisher, SecurityEventReceiver
from jwt_revocation.shared import JWKSKeys, RevocationError, RevocationSettings, ensure_topic

from ._demo import Service, _step, _table, _until_rejected
from ._keycloak import KEYCLOAK_URL, Keycloak, KeycloakError

LIFETIME = timedelta(minutes=10)
KEY_REFETCH_INTERVAL = 5.0
CLIENT = "orders"
ADMIN_PATH = "/keycloak"


def _next_second() -> None:
    # Keycloak's iat has whole seconds, and a cutoff revokes the tokens of its own second.
    time.sleep(1.05 - time.time() % 1)


def run_keycloak_demo(settings: RevocationSettings, keycloak_url: str = KEYCLOAK_URL) -> int:
    """Run the Keycloak story; return 0 when every service answered as expected."""
    kc = Keycloak(keycloak_url)
    if not kc.ready():
        print(
            f"Keycloak does not answer at {keycloak_url}: run `scripts/services.sh keycloak-start`"
        )
        return 1
    run = uuid.uuid4().hex[:6]
    realm = f"demo-{run}"
    secret = uuid.uuid4().hex
    print(f"Keycloak {keycloak_url}, Kafka {settings.bootstrap_servers}, topic {settings.topic}")
    ensure_topic(settings.bootstrap_servers, settings.topic, max_token_lifetime=LIFETIME)
    with (
        RevocationPublisher.from_settings(settings, issuer="keycloak-receiver") as publisher,
        tempfile.TemporaryDirectory(prefix="jwt-revocation-demo-") as state,
    ):
        # The receiver binds its port now; Keycloak learns the address with the client. Its
        # store lives as long as the demo: what it verified and did not publish dies with it.
        receiver = SecurityEventReceiver(
            publisher,
            None,
            max_token_lifetime=LIFETIME,
            store=Path(state) / "receiver.db",
            port=0,
            logout=LogoutTokenVerifier(issuer=kc.issuer(realm), client_id=CLIENT),
            keycloak_admin_path=ADMIN_PATH,
        )
        receiver_url = "http://{}:{}".format(*receiver.address)
        receiver.start()
        try:
            kc.create_realm(realm)
            kc.create_client(
                realm,
                CLIENT,
                secret,
                backchannel_logout_url=f"{receiver_url}/backchannel-logout",
                admin_url=receiver_url + ADMIN_PATH,
            )
            users = {name: kc.create_user(realm, name, f"{name}-pw") for name in ("alice", "bob")}
            print(
                f"realm {realm}: client {CLIENT} sends its logouts to the receiver at {receiver_url}"
            )
            return _story(kc, realm, secret, users, settings)
        finally:
            receiver.stop()
            with contextlib.suppress(KeycloakError):
                kc.delete_realm(realm)


def _service(name: str, settings: RevocationSettings, kc: Keycloak, realm: str) -> Service:
    sidecar = RevocationSidecar.from_settings(
        settings, max_token_lifetime=LIFETIME, name=f"sidecar-{name}"
    )
    verifier = RevocationVerifier(
        sidecar,
        # At most one fetch per 5 s for an unknown kid (30 s by default), so that the demo
        # shows a rotation followed without waiting long.
        key_resolver=JWKSKeys(kc.jwks_url(realm), refetch_interval=KEY_REFETCH_INTERVAL),
        algorithms=["RS256"],
        issuer=kc.issuer(realm),
        audience="account",
    )
    return Service(name, sidecar, verifier)


def _until_accepted(services: list[Service], token: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(s.answer(token) == "200" for s in services):
        if time.monotonic() > deadline:
            raise RevocationError(f"the new key's token was not accepted within {timeout:g} s")
        time.sleep(0.1)


def _story(
    kc: Keycloak, realm: str, secret: str, users: dict[str, str], settings: RevocationSettings
) -> int:
    services = [_service(name, settings, kc, realm) for name in ("orders", "billing", "search")]
    for service in services:
        service.sidecar.start(timeout=60)
        service.verifier.load_keys()  # before the first request, as an application does at start
    ok = True
    delays: list[float] = []

    def sign_in(name: str) -> str:
        return kc.sign_in(realm, CLIENT, secret, name, f"{name}-pw").access_token

    try:
        laptop = kc.sign_in(realm, CLIENT, secret, "alice", "alice-pw")
        tokens = {
            "alice@laptop": laptop.access_token,
            "alice@phone": sign_in("alice"),
            "bob": sign_in("bob"),
        }
        expect = dict.fromkeys(tokens, "200")
        _step("1. Keycloak signs three sessions in; every service verifies through the JWKS")
        ok &= _table(services, tokens, expect)

        def revoke(step: str, action: Callable[[], object], labels: list[str]) -> None:
            nonlocal ok
            _step(step)
            started = time.perf_counter()
            action()
            for label in labels:
                _until_rejected(services, tokens[label], timeout=20)
            seconds = time.perf_counter() - started
            delays.append(seconds)
            print(f"  Keycloak's call to rejection by all three services: {seconds * 1000:.0f} ms")
            expect.update(dict.fromkeys(labels, "401"))
            ok &= _table(services, tokens, expect)

        revoke(
            "2. alice logs out of her laptop (back-channel logout: that session only)",
            lambda: kc.log_out(realm, CLIENT, secret, laptop.refresh_token),
            ["alice@laptop"],
        )
        revoke(
            "3. an admin logs bob out of every session",
            lambda: kc.log_out_user(realm, users["bob"]),
            ["bob"],
        )

        _step("4. the realm's signing key is rotated; nothing restarts")
        kid = kc.add_rsa_key(realm, priority=500)
        rotated = time.perf_counter()
        token = tokens["alice (new key)"] = sign_in("alice")
        expect["alice (new key)"] = "200"
        signed = jwt.get_unverified_header(token)["kid"]
        print(f"  alice's new token is signed with the new key: {'yes' if signed == kid else 'NO'}")
        try:
            _until_accepted(services, token, timeout=KEY_REFETCH_INTERVAL + 10)
            print(
                f"  every service fetched the new key and accepts the token "
                f"{time.perf_counter() - rotated:.1f} s after the rotation (an unknown kid "
                f"fetches the JWKS at most once per {KEY_REFETCH_INTERVAL:g} s)"
            )
        except RevocationError as err:
            print(f"  {err}")
        ok &= _table(services, tokens, expect)

        revoke(
            "5. an admin revokes every older token of the realm (push revocation)",
            lambda: kc.push_revocation(realm),
            [label for label, answer in expect.items() if answer == "200"],
        )
        _next_second()
        tokens["alice (after)"] = sign_in("alice")
        expect["alice (after)"] = "200"
        print("  alice signs in again; her new token is accepted:")
        ok &= _table(services, {"alice (after)": tokens["alice (after)"]}, expect)
    finally:
        for service in services:
            service.sidecar.stop()
    print(
        f"\nKeycloak call to rejection by all three services: median "
        f"{statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms over "
        f"{len(delays)} revocations"
    )
    print(
        "demo " + ("passed: every answer was as expected" if ok else "FAILED: see the marks above")
    )
    return 0 if ok else 1
