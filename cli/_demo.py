"""``jwt-revocation demo``: an auth service, three services with embedded sidecars, every revocation.

The auth service issues HS256 tokens and publishes revocations. Three services ("orders",
"billing", "search") each embed their own sidecar and verifier. The demo logs a device out,
changes a password and deletes a user, and shows each revoked token rejected by all three
services, the other tokens still accepted, and the time from publish to rejection everywhere.
Finally a fourth service starts from nothing and rebuilds the same state from the topic.
"""

from __future__ import annotations

import secrets
import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt

from jwt_revocation.consumer import RevocationSidecar, RevocationVerifier
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import (
    KafkaConnection,
    RevocationError,
    RevocationSettings,
    ensure_topic,
)

LIFETIME = timedelta(minutes=5)
ISSUER = "demo-auth"


class AuthService:
    """Issues short-lived tokens (sub-second ``iat``) and publishes revocations."""

    def __init__(self, key: bytes, publisher: RevocationPublisher) -> None:
        self._key = key
        self.publisher = publisher

    def login(self, user: str) -> str:
        now = time.time()
        claims = {
            "iss": ISSUER,
            "sub": user,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": int(now + LIFETIME.total_seconds()) - 1,
        }
        return jwt.encode(claims, self._key, algorithm="HS256")


@dataclass
class Service:
    """A service with its own embedded sidecar."""

    name: str
    sidecar: RevocationSidecar
    verifier: RevocationVerifier

    def answer(self, token: str) -> str:
        verdict = self.verifier.decide(token)
        if verdict.accepted:
            return "200"
        return f"{503 if verdict.outcome == 'unavailable' else 401} {verdict.reason}"


def _service(name: str, settings: RevocationSettings, key: bytes) -> Service:
    sidecar = RevocationSidecar.from_settings(
        settings, max_token_lifetime=LIFETIME, name=f"sidecar-{name}"
    )
    verifier = RevocationVerifier(sidecar, key=key, algorithms=["HS256"], issuer=ISSUER)
    return Service(name, sidecar, verifier)


def _table(services: list[Service], tokens: dict[str, str], expect: dict[str, str]) -> bool:
    width = max(len(label) for label in tokens)
    header = f"  {'token':<{width}}  " + "  ".join(f"{s.name:<24}" for s in services)
    print(header)
    good = True
    for label, token in tokens.items():
        answers = [s.answer(token) for s in services]
        ok = all(a.startswith(expect[label]) for a in answers)
        good &= ok
        cells = "  ".join(f"{a:<24}" for a in answers)
        print(f"  {label:<{width}}  {cells}{'' if ok else '   <-- unexpected'}")
    return good


def _until_rejected(services: list[Service], token: str, timeout: float = 10.0) -> float:
    """Seconds from now until every service rejects the token as revoked."""
    start = time.perf_counter()
    pending = list(services)
    while pending:
        pending = [s for s in pending if not s.answer(token).startswith("401")]
        time.sleep(0.0002)  # a busy loop would hold the GIL the sidecars need
        if time.perf_counter() - start > timeout:
            raise RevocationError(f"not rejected within {timeout} s by {[s.name for s in pending]}")
    return time.perf_counter() - start


def _step(title: str) -> None:
    print(f"\n== {title}")


def run_demo(settings: RevocationSettings) -> int:
    """Run the whole story; return 0 when every service answered as expected."""
    key = secrets.token_bytes(32)  # a fresh signing key for each run; never printed
    print(f"Kafka {settings.bootstrap_servers}, topic {settings.topic}")
    ensure_topic(
        settings.bootstrap_servers,
        settings.topic,
        max_token_lifetime=LIFETIME,
        connection=KafkaConnection.from_settings(settings),
    )
    run = uuid.uuid4().hex[:6]
    users = {name: f"{name}-{run}" for name in ("alice", "bob", "carol")}
    services = [_service(name, settings, key) for name in ("orders", "billing", "search")]
    ok = True
    delays: list[float] = []
    with (
        RevocationPublisher.from_settings(settings, issuer=ISSUER) as publisher,
        ThreadPoolExecutor(len(services)) as pool,
    ):
        auth = AuthService(key, publisher)
        started = time.perf_counter()
        list(pool.map(lambda s: s.sidecar.start(timeout=60), services))
        print(
            f"three services started their sidecars in {time.perf_counter() - started:.2f} s "
            f"(replayed {sum(sum(s.sidecar.stats().applied.values()) for s in services)} events)"
        )
        try:
            tokens = {
                "alice@laptop": auth.login(users["alice"]),
                "alice@phone": auth.login(users["alice"]),
                "bob": auth.login(users["bob"]),
                "carol": auth.login(users["carol"]),
            }
            expect = dict.fromkeys(tokens, "200")
            _step("1. four tokens, accepted by every service")
            ok &= _table(services, tokens, expect)

            def revoke(step: str, action: Callable[[], Any], token: str, label: str) -> None:
                nonlocal ok
                _step(step)
                action()
                seconds = _until_rejected(services, token)
                delays.append(seconds)
                print(
                    f"  publish returned; all three services reject it {seconds * 1000:.1f} ms later"
                )
                expect[label] = "401"
                ok &= _table(services, tokens, expect)

            laptop = jwt.decode(tokens["alice@laptop"], key, algorithms=["HS256"], issuer=ISSUER)
            revoke(
                "2. alice logs out of her laptop: that one token is revoked",
                lambda: auth.publisher.revoke_token(laptop),
                tokens["alice@laptop"],
                "alice@laptop",
            )
            revoke(
                "3. bob changes his password: every token he had is revoked",
                lambda: auth.publisher.password_changed(user_id=users["bob"]),
                tokens["bob"],
                "bob",
            )
            tokens["bob (new login)"] = auth.login(users["bob"])
            expect["bob (new login)"] = "200"
            print("  bob logs in again; his new token is accepted:")
            ok &= _table(services, {"bob (new login)": tokens["bob (new login)"]}, expect)
            revoke(
                "4. carol's account is deleted",
                lambda: auth.publisher.user_deleted(user_id=users["carol"]),
                tokens["carol"],
                "carol",
            )

            _step("5. a new service starts from nothing and replays the topic")
            newcomer = _service("reports (new)", settings, key)
            started = time.perf_counter()
            newcomer.sidecar.start(timeout=60)
            print(f"  caught up in {(time.perf_counter() - started) * 1000:.0f} ms")
            ok &= _table([*services, newcomer], tokens, expect)
            newcomer.sidecar.stop()
        finally:
            for service in services:
                service.sidecar.stop()
    print(
        f"\npublish to rejection by all three services: median {statistics.median(delays) * 1000:.1f} ms, "
        f"max {max(delays) * 1000:.1f} ms over {len(delays)} revocations"
    )
    print(
        "demo " + ("passed: every answer was as expected" if ok else "FAILED: see the marks above")
    )
    return 0 if ok else 1
