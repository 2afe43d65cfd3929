"""Fixtures for tests against the real Kafka broker and Redis started by `make services`.

A missing broker fails the tests: it is never a reason to skip.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis
from kafka.admin import KafkaAdminClient

from bench.secured import services_lock
from jwt_revocation.consumer import RevocationSidecar, RevocationVerifier, TokenRevokedError
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import (
    TokenRevoked,
    UserDeleted,
    UserTokensRevoked,
    ensure_topic,
)
from tests.support import wait_for

BOOTSTRAP = "127.0.0.1:9092"
REDIS = ("127.0.0.1", 6379)
KEY = "integration-test-signing-key-0123456789"
LIFETIME = timedelta(hours=1)
ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services.sh"

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration ``integration``, before ``-m`` selects: ``-m
    integration`` runs them, ``-m "not integration"`` the unit tests. (A ``pytestmark`` in a
    conftest marks nothing.)"""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


SESSION = uuid.uuid4().hex[:6]
"""Names this test session's topics: ``test-<SESSION>-...`` (:func:`topic_name`). Another
session running beside it (a second pytest on the same broker) names its own, a bench run its
``bench-...``, and each deletes only its own."""


def topic_name(label: str = "") -> str:
    """A fresh topic name of this session (deleted at its end if it was created)."""
    return f"test-{SESSION}-{label}{'-' if label else ''}{uuid.uuid4().hex[:8]}"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


PLAIN_BROKER_LOCK = "kafka.tests"
"""The plain broker's lock in the services dir (see :func:`bench.secured.services_lock`)."""


@pytest.fixture(scope="session", autouse=True)
def services() -> Iterator[None]:
    """The real broker and Redis must be up; start them if they are not, fail if that fails.

    Every topic the session created (named by :func:`topic_name`) is deleted at its end, so runs
    do not pile up partitions (a broker with thousands of them takes many seconds to restart
    after a crash); no other topic is touched.
    """
    # Under the broker's shared lock: a broker another session's fault test killed is not
    # started again in the middle of that test.
    with services_lock(PLAIN_BROKER_LOCK, exclusive=False):
        if not (_reachable("127.0.0.1", 9092) and _reachable(*REDIS)):
            subprocess.run([str(SERVICES), "start"], check=False, timeout=300)
    missing = [
        name
        for name, (host, port) in {"kafka": ("127.0.0.1", 9092), "redis": REDIS}.items()
        if not _reachable(host, port)
    ]
    if missing:
        pytest.fail(f"{', '.join(missing)} not reachable; run `make services`", pytrace=False)
    yield
    created = sorted(name for name in _topics() if name.startswith(f"test-{SESSION}-"))
    if created:
        admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        try:
            admin.delete_topics(created, timeout_ms=30_000)
        finally:
            admin.close()


@pytest.fixture(autouse=True)
def plain_broker_lock(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every integration test holds the plain broker's lock for its duration: shared, or
    exclusive for a test that kills or pauses it (one that uses :func:`broker_control`), so
    such a test never runs while another session's test uses the broker.

    The mode is chosen once, from the test's fixtures: a test holding a share that then asked
    for exclusive would wait for itself.
    """
    exclusive = "broker_control" in request.fixturenames
    with services_lock(PLAIN_BROKER_LOCK, exclusive=exclusive):
        yield


class BrokerControl:
    """Kills, pauses and starts the plain broker through scripts/services.sh."""

    @staticmethod
    def _run(action: str) -> None:
        subprocess.run([str(SERVICES), action], check=True, timeout=180, capture_output=True)

    def kill(self) -> None:
        """SIGKILL the broker: a crash."""
        self._run("kafka-kill")

    def start(self) -> None:
        """Start it again (or wake it from a pause) and wait for its port."""
        self._run("kafka-start")

    def pause(self) -> None:
        """SIGSTOP it: a broker that answers nothing."""
        self._run("kafka-pause")

    def resume(self) -> None:
        """SIGCONT it."""
        self._run("kafka-resume")


@pytest.fixture
def broker_control() -> Iterator[BrokerControl]:
    """Lets a test crash or freeze the plain broker, holding its lock exclusive (see
    :func:`plain_broker_lock`); whatever happens, the broker is running afterwards."""
    control = BrokerControl()
    yield control
    control.start()


def _topics() -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


@pytest.fixture
def topic() -> str:
    """A fresh topic for this test, created with a safe retention."""
    name = topic_name()
    ensure_topic(BOOTSTRAP, name, max_token_lifetime=LIFETIME, partitions=3)
    return name


@pytest.fixture
def publisher(topic: str) -> Iterator[RevocationPublisher]:
    with RevocationPublisher(BOOTSTRAP, topic, issuer="tests") as pub:
        yield pub


SidecarFactory = Callable[..., RevocationSidecar]


@pytest.fixture
def make_sidecar(topic: str) -> Iterator[SidecarFactory]:
    """Build and start sidecars on the test's topic; every one is stopped at teardown."""
    made: list[RevocationSidecar] = []

    def make(start: bool = True, **kwargs: Any) -> RevocationSidecar:
        kwargs.setdefault("max_token_lifetime", LIFETIME)
        sidecar = RevocationSidecar(BOOTSTRAP, kwargs.pop("topic", topic), **kwargs)
        made.append(sidecar)
        if start:
            sidecar.start(timeout=30)
        return sidecar

    yield make
    for sidecar in made:
        sidecar.stop()


def verifier_for(sidecar: RevocationSidecar, **kwargs: Any) -> RevocationVerifier:
    """A verifier with the tests' key."""
    return RevocationVerifier(sidecar, key=KEY, algorithms=["HS256"], **kwargs)


def start_cli(*args: str, **env: str) -> subprocess.Popen[str]:
    """Run ``jwt-revocation ARGS`` in the background against the tests' broker."""
    return subprocess.Popen(
        [sys.executable, "-m", "jwt_revocation.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JWT_REVOCATION_BOOTSTRAP_SERVERS": BOOTSTRAP, **env},
    )


@dataclass
class CliRun:
    """A foreground command running in the background, and how it ended."""

    process: subprocess.Popen[str]
    returncode: int | None = None
    stderr: str = ""

    def line(self, timeout: float = 60) -> str:
        """The next line the command prints."""
        assert self.process.stdout is not None
        return wait_for(self.process.stdout.readline, timeout=timeout)


@contextmanager
def running_cli(*args: str, **env: str) -> Iterator[CliRun]:
    """Run a foreground command for the block; stop it with SIGTERM at the end of the block
    (``returncode`` tells how it ended), or kill it if the block failed."""
    run = CliRun(start_cli(*args, **env))
    try:
        yield run
        run.process.send_signal(signal.SIGTERM)
        run.returncode = run.process.wait(timeout=30)
    finally:
        run.process.kill()
        _, run.stderr = run.process.communicate()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(
    command: list[str], *, env: dict[str, str], log: Path, alive: Callable[[], bool]
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server (``python -m COMMAND``, output in ``log``) for the block, once ``alive()``
    says it answers; terminated at the end (killed after 30 s)."""
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", *command], env=env, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            wait_for(alive, timeout=60, interval=0.05)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def revocation_reason(sidecar: RevocationSidecar, token: str) -> str | None:
    """The revocation reason the sidecar's verifier gives, or None when it accepts the token."""
    try:
        verifier_for(sidecar).verify(token)
    except TokenRevokedError as err:
        return err.reason
    return None


def issue(user: str, *, jti: str | None = None, iat: float | None = None, ttl: float = 600) -> str:
    """A token signed with the tests' key; ``iat`` with sub-second precision by default."""
    now = time.time() if iat is None else iat
    claims: dict[str, Any] = {"sub": user, "iat": now, "exp": int(now + ttl)}
    claims["jti"] = jti or uuid.uuid4().hex
    return jwt.encode(claims, KEY, algorithm="HS256")


@pytest.fixture
def client() -> redis.Redis:
    """A client of the real Redis."""
    return redis.Redis(*REDIS)


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    """A Redis key prefix for this test alone; its keys are deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    for key in client.scan_iter(match=f"{name}:*"):
        client.delete(key)


def mixed_events(
    count: int, start: int = 0
) -> list[TokenRevoked | UserTokensRevoked | UserDeleted]:
    """Logouts of 40 users, with a password change every 7th and a deletion every 11th event."""
    now = datetime.now(UTC)
    events: list[TokenRevoked | UserTokensRevoked | UserDeleted] = []
    for i in range(start, start + count):
        user = f"user-{i % 40}"
        if i % 11 == 0:
            events.append(UserDeleted(issuer="tests", occurred_at=now, user_id=user, at=now))
        elif i % 7 == 0:
            events.append(
                UserTokensRevoked(issuer="tests", occurred_at=now, user_id=user, not_before=now)
            )
        else:
            events.append(
                TokenRevoked(
                    issuer="tests",
                    occurred_at=now,
                    jti=f"jti-{i}-{uuid.uuid4().hex[:6]}",
                    user_id=user,
                    expires_at=datetime.fromtimestamp(time.time() + 600, UTC),
                )
            )
    return events
