"""Logouts received while the shared broker is frozen or down, a receiver killed while it holds
one, and a receiver started while Kafka cannot be reached.

Like tests/integration/test_faults.py, these freeze or kill the suite's one broker through
scripts/services.sh and always leave it running. The provider is a local JWKS server and a key
that signs the logout tokens; the services are real sidecars on the test's topic.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import create_engine, select

from jwt_revocation.consumer import RevocationSidecar
from jwt_revocation.producer import LogoutTokenVerifier, RevocationPublisher, SecurityEventReceiver
from jwt_revocation.producer.outbox import OUTBOX
from tests.integration.conftest import (
    BOOTSTRAP,
    KEY,
    BrokerControl,
    CliRun,
    SidecarFactory,
    free_port,
    revocation_reason,
    running_cli,
    start_cli,
)
from tests.integration.jwks_server import JWKSServer, SigningKey, jwks_server
from tests.support import post_logout, wait_for

ISSUER = "https://idp.example.com/realms/acme"
CLIENT = "orders"
SAMPLES = 20
"""Logouts posted with the broker up, and again with it frozen (the medians reported)."""


@pytest.fixture
def provider() -> Iterator[tuple[JWKSServer, SigningKey]]:
    key = SigningKey("k1")
    with jwks_server(key) as server:
        yield server, key


def _logout_token(key: SigningKey, user: str, session: str) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": CLIENT,
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
        "sub": user,
        "sid": session,
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    }
    headers = {"kid": key.kid, "typ": "logout+jwt"}
    return jwt.encode(claims, key.private, algorithm="RS256", headers=headers)


def _session_token(user: str, session: str) -> str:
    """An access token of the session, issued before its logout (signed with the tests' key)."""
    now = time.time() - 5
    claims = {"sub": user, "sid": session, "jti": uuid.uuid4().hex, "iat": now, "exp": now + 600}
    return jwt.encode(claims, KEY, algorithm="HS256")


def _log_out(url: str, token: str) -> tuple[int, float]:
    """POST the logout token; its answer's status and how long the answer took."""
    started = time.perf_counter()
    status = post_logout(url, token)[0]
    return status, time.perf_counter() - started


def _receive(server: JWKSServer, store: Path, *more: str) -> list[str]:
    """The arguments of ``jwt-revocation receive`` for the provider's logouts, on any port."""
    return [
        "receive",
        "--http",
        "127.0.0.1:0",
        "--oidc-issuer",
        ISSUER,
        "--oidc-client-id",
        CLIENT,
        "--oidc-jwks-url",
        server.url,
        "--store",
        str(store),
        *more,
    ]


def _enforced(sidecars: list[RevocationSidecar], tokens: list[str]) -> bool:
    return all(revocation_reason(s, t) == "session_revoked" for s in sidecars for t in tokens)


def _published_at(store: Path) -> list[Any]:
    engine = create_engine(f"sqlite:///{store}")
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(OUTBOX.c.published_at)).scalars())
    finally:
        engine.dispose()


def test_logouts_received_while_the_broker_is_frozen_are_answered_and_enforced_when_it_is_back(
    broker_control: BrokerControl,
    topic: str,
    make_sidecar: SidecarFactory,
    provider: tuple[JWKSServer, SigningKey],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, key = provider
    sidecars = [make_sidecar(max_staleness=300) for _ in range(3)]
    verifier = LogoutTokenVerifier(issuer=ISSUER, client_id=CLIENT, jwks_url=server.url)
    with RevocationPublisher(BOOTSTRAP, topic, issuer="receiver") as publisher:
        receiver = SecurityEventReceiver(
            publisher,
            None,
            max_token_lifetime="1h",
            store=tmp_path / "receiver.db",
            port=0,
            logout=verifier,
        )
        receiver.start()
        try:
            url = "http://{}:{}/backchannel-logout".format(*receiver.address)
            run = uuid.uuid4().hex[:6]
            up = [f"up-{run}-{i}" for i in range(SAMPLES)]
            frozen = [f"frozen-{run}-{i}" for i in range(SAMPLES)]
            tokens = {session: _session_token("alice", session) for session in up + frozen}
            up_latencies = []
            for session in up:
                status, took = _log_out(url, _logout_token(key, "alice", session))
                assert status == 200
                up_latencies.append(took)
            wait_for(lambda: _enforced(sidecars, [tokens[s] for s in up]), timeout=30)

            broker_control.pause()
            frozen_latencies = []
            for session in frozen:
                status, took = _log_out(url, _logout_token(key, "alice", session))
                assert status == 200  # stored: the broker's state does not change the answer
                frozen_latencies.append(took)
            assert receiver.relay.status()["pending_rows"] == SAMPLES
            # Down for longer than a publish may wait: the relay has given up once at least.
            wait_for(lambda: receiver.relay.status()["publish_failures"] >= 1, timeout=60)
            assert receiver.relay.status()["pending_rows"] == SAMPLES
            broker_control.resume()
            resumed = time.perf_counter()

            wait_for(lambda: receiver.relay.status()["pending_rows"] == 0, timeout=60)
            published = time.perf_counter() - resumed
            wait_for(lambda: _enforced(sidecars, [tokens[s] for s in frozen]), timeout=60)
            enforced = time.perf_counter() - resumed
        finally:
            receiver.stop()
    assert receiver.logout_counts == {("backchannel", "stored"): 2 * SAMPLES}
    with capsys.disabled():
        print(
            f"\n[receiver] logout POST median {statistics.median(up_latencies) * 1000:.1f} ms "
            f"with the broker up, {statistics.median(frozen_latencies) * 1000:.1f} ms with it "
            f"frozen ({SAMPLES} each); the {SAMPLES} frozen-time logouts published "
            f"{published:.2f} s and enforced by 3 sidecars {enforced:.2f} s after the broker "
            "was resumed"
        )


def test_a_logout_stored_by_a_receiver_killed_before_publishing_is_enforced_after_a_restart(
    broker_control: BrokerControl,
    topic: str,
    make_sidecar: SidecarFactory,
    provider: tuple[JWKSServer, SigningKey],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, key = provider
    store = tmp_path / "receiver.db"
    sidecars = [make_sidecar(max_staleness=300) for _ in range(2)]
    session = f"killed-{uuid.uuid4().hex[:6]}"
    token = _session_token("bob", session)

    def receive() -> tuple[CliRun, str]:
        run = CliRun(start_cli(*_receive(server, store), JWT_REVOCATION_TOPIC=topic))
        return run, run.line().split()[-1]  # "receiving logout tokens on URL"

    first, url = receive()
    try:
        # Killed, not frozen: a frozen broker keeps the dying receiver's produce request in its
        # socket buffer and appends it once resumed (measured: enforced 0.09 s after the
        # resume, before the new receiver was up), which would hide what the restart does.
        broker_control.kill()
        assert _log_out(url, _logout_token(key, "bob", session))[0] == 200
        first.process.send_signal(signal.SIGKILL)
        assert first.process.wait(timeout=30) == -signal.SIGKILL
    finally:
        first.process.kill()
        first.process.communicate()
    assert _published_at(store) == [None]  # stored, and never marked published

    broker_control.start()
    restarted = time.perf_counter()
    second, _ = receive()
    try:
        serving = time.perf_counter()
        wait_for(lambda: _enforced(sidecars, [token]), timeout=60)
        enforced = time.perf_counter()
        # Marked by the new receiver's relay: only it published and saw the acknowledgement.
        wait_for(lambda: _published_at(store) != [None], timeout=30)
        second.process.send_signal(signal.SIGTERM)
        assert second.process.wait(timeout=30) == 0
    finally:
        second.process.kill()
        _, stderr = second.process.communicate()
    assert "pending=0" in stderr
    with capsys.disabled():
        print(
            f"\n[receiver] a logout stored by a SIGKILLed receiver: enforced by both sidecars "
            f"{enforced - restarted:.2f} s after the restart began, "
            f"{enforced - serving:.2f} s after the new receiver served"
        )


class _Forwarder:
    """A loopback port that forwards each connection to the broker, once started: a Kafka
    bootstrap address that cannot be reached until then (the broker then tells the client its
    own address, 127.0.0.1:9092)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.close()  # nothing listens until start()
        self._sockets: list[socket.socket] = []

    def start(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                broker = socket.create_connection(("127.0.0.1", int(BOOTSTRAP.split(":")[1])))
                self._sockets += [client, broker]
                for source, target in ((client, broker), (broker, client)):
                    threading.Thread(target=_pump, args=(source, target), daemon=True).start()

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            sock.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)


def test_a_receiver_started_while_kafka_cannot_be_reached_stores_and_publishes_once_it_can(
    topic: str,
    make_sidecar: SidecarFactory,
    provider: tuple[JWKSServer, SigningKey],
    tmp_path: Path,
) -> None:
    server, key = provider
    sidecar = make_sidecar()
    session = f"early-{uuid.uuid4().hex[:6]}"
    token = _session_token("carol", session)
    kafka = _Forwarder()
    try:
        with running_cli(
            *_receive(server, tmp_path / "receiver.db", "--timeout", "2"),
            JWT_REVOCATION_BOOTSTRAP_SERVERS=f"127.0.0.1:{kafka.port}",
            JWT_REVOCATION_PUBLISH_TIMEOUT="3s",
            JWT_REVOCATION_TOPIC=topic,
        ) as run:
            url = run.line().split()[-1]  # served although Kafka could not be reached
            assert _log_out(url, _logout_token(key, "carol", session))[0] == 200
            kafka.start()
            wait_for(lambda: _enforced([sidecar], [token]), timeout=60)
    finally:
        kafka.close()
    assert run.returncode == 0
    assert "receiving and storing without Kafka for now" in run.stderr
    assert "pending=0" in run.stderr
