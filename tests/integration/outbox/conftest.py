"""Fixtures for the outbox tests: the real PostgreSQL of `make services` (127.0.0.1:55432),
a schema of its own for each test, and a reader of everything a topic holds.

An unreachable PostgreSQL fails the session: it is never a reason to skip.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import URL, Engine, create_engine, text

from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.producer.outbox import OutboxRelay, RevocationOutbox
from jwt_revocation.shared import Event, decode_event
from tests.integration.conftest import BOOTSTRAP, SERVICES

POSTGRES = ("127.0.0.1", 55432)
POSTGRES_URL = "postgresql+psycopg://postgres:jwt-revocation@127.0.0.1:55432/jwt_revocation"


def _reachable() -> bool:
    try:
        with socket.create_connection(POSTGRES, timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def postgres() -> None:
    """PostgreSQL must be up: start it if it is not, fail the session if that fails."""
    if not _reachable():
        subprocess.run([str(SERVICES), "postgres-start"], check=False, timeout=300)
    if not _reachable():
        pytest.fail(
            "PostgreSQL not reachable on 127.0.0.1:55432; run `scripts/services.sh start`",
            pytrace=False,
        )


@pytest.fixture
def database_url() -> Iterator[str]:
    """A URL of the tests' database whose connections use a fresh schema of this test alone,
    so relays of different tests never see each other's rows; dropped afterwards."""
    schema = f"outbox_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def outbox(engine: Engine) -> RevocationOutbox:
    """The outbox of the test's schema, its table created."""
    outbox = RevocationOutbox(engine, issuer="auth")
    outbox.create_table()
    return outbox


RelayFactory = Callable[..., OutboxRelay]
"""``start_relay(engine_or_url, timeout=10, **relay_arguments)``."""


@pytest.fixture
def start_relay(topic: str) -> Iterator[RelayFactory]:
    """Start relays with a real publisher on the test's topic; all stopped at teardown.

    Given a URL instead of an engine, a relay gets an engine of its own, as a relay in another
    process would, disposed after the relay stopped."""
    started: list[tuple[OutboxRelay, RevocationPublisher]] = []
    engines: list[Engine] = []

    def start(engine: Engine | URL, *, timeout: float = 10, **kwargs: object) -> OutboxRelay:
        if isinstance(engine, URL):
            engine = create_engine(engine)
            engines.append(engine)
        publisher = RevocationPublisher(BOOTSTRAP, topic, issuer="relay", timeout=timeout)
        relay = OutboxRelay(engine, publisher.publish_many, **kwargs)  # type: ignore[arg-type]
        started.append((relay, publisher))
        return relay.start()

    yield start
    for relay, publisher in started:
        relay.stop()
        publisher.close()
    for engine in engines:
        engine.dispose()


def pending(engine: Engine) -> int:
    """Rows of the outbox not yet marked published."""
    with engine.connect() as connection:
        query = "SELECT count(*) FROM jwt_revocation_outbox WHERE published_at IS NULL"
        return int(connection.execute(text(query)).scalar_one())


def write_logouts(outbox: RevocationOutbox, count: int, per_transaction: int = 500) -> list[Event]:
    """Commit ``count`` logouts of 50 users, ``per_transaction`` to a transaction."""
    written: list[Event] = []
    expires = time.time() + 900
    while len(written) < count:
        with outbox.engine.begin() as connection:
            for _ in range(min(per_transaction, count - len(written))):
                i = len(written)
                written.append(
                    outbox.logout(
                        connection,
                        jti=f"jti-{i}-{uuid.uuid4().hex[:6]}",
                        user_id=f"u{i % 50}",
                        expires_at=expires,
                    )
                )
    return written


@dataclass
class TopicContents:
    """Every event a topic holds, and how often each event id occurs."""

    events: list[Event]

    @property
    def counts(self) -> Counter[str]:
        return Counter(event.event_id for event in self.events)

    @property
    def duplicates(self) -> int:
        return len(self.events) - len(self.counts)


def read_topic(topic: str) -> TopicContents:
    """Read every record of ``topic`` up to the end offsets seen now."""
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        events: list[Event] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, "the topic could not be read within 60 s"
            for records in consumer.poll(timeout_ms=500).values():
                events.extend(decode_event(record.value) for record in records)
        return TopicContents(events)
    finally:
        consumer.close()


@pytest.fixture
def topic_size(topic: str) -> Iterator[Callable[[], int]]:
    """A function that counts the records on the test's topic (the sum of its end offsets)."""
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    yield lambda: sum(consumer.end_offsets(partitions).values())
    consumer.close()


RELAY_SCRIPT = """
import argparse, sys
from jwt_revocation.cli._outbox import add_relay_arguments, run_relay
from jwt_revocation.shared import RevocationSettings
parser = argparse.ArgumentParser()
add_relay_arguments(parser)
sys.exit(run_relay(parser.parse_args(sys.argv[1:]), RevocationSettings()))
"""


@functools.cache
def _cli_has_relay() -> bool:
    probe = [sys.executable, "-m", "jwt_revocation.cli", "relay", "--help"]
    return subprocess.run(probe, capture_output=True, timeout=60, check=False).returncode == 0


def relay_process(database_url: str, topic: str, *args: str) -> subprocess.Popen[str]:
    """``jwt-revocation relay`` in a process of its own: through the CLI when its command
    table has the command, else through the command's own run function."""
    command = (
        [sys.executable, "-m", "jwt_revocation.cli", "relay"]
        if _cli_has_relay()
        else [sys.executable, "-c", RELAY_SCRIPT]
    )
    return subprocess.Popen(
        [*command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "JWT_REVOCATION_BOOTSTRAP_SERVERS": BOOTSTRAP,
            "JWT_REVOCATION_TOPIC": topic,
            "JWT_REVOCATION_DATABASE_URL": database_url,
        },
    )
