"""The outbox on the real broker and PostgreSQL (and a SQLite file): a committed revocation
is enforced, a rolled-back one never published, a killed relay loses nothing, two relays
share the work."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from jwt_revocation.producer.outbox import RevocationOutbox
from tests.integration.conftest import SidecarFactory, issue, revocation_reason
from tests.integration.outbox.conftest import (
    POSTGRES_URL,
    RelayFactory,
    pending,
    read_topic,
    relay_process,
    write_logouts,
)
from tests.support import wait_for


@pytest.fixture(params=["postgresql", "sqlite"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    """The test's PostgreSQL schema, or a SQLite file."""
    if request.param == "postgresql":
        engine: Engine = request.getfixturevalue("engine")
        return engine
    engine = create_engine(f"sqlite:///{tmp_path / 'auth.db'}")
    request.addfinalizer(engine.dispose)  # noqa: PT021 - the other branch is another fixture
    return engine


def test_a_rollback_publishes_nothing_and_a_commit_is_published_once_and_enforced(
    any_engine: Engine, topic: str, start_relay: RelayFactory, make_sidecar: SidecarFactory
) -> None:
    outbox = RevocationOutbox(any_engine, issuer="auth")
    outbox.create_table()
    sidecar = make_sidecar()
    alice, bob = issue("alice"), issue("bob")
    # A poll interval longer than the test: on PostgreSQL only the NOTIFY at commit can wake
    # the relay; SQLite has none, so there it polls quickly.
    listening = any_engine.dialect.name == "postgresql"
    relay = start_relay(any_engine, poll_interval=60 if listening else 0.05)
    wait_for(lambda: relay.state == "idle" and relay.status()["listening"] is listening)

    with Session(any_engine) as session:
        outbox.password_changed(session, user_id="alice")
        session.rollback()
    with Session(any_engine) as session, session.begin():
        committed = outbox.password_changed(session, user_id="bob")

    assert wait_for(lambda: revocation_reason(sidecar, bob), timeout=5) == "user_tokens_revoked"
    assert revocation_reason(sidecar, alice) is None
    wait_for(lambda: pending(any_engine) == 0)
    contents = read_topic(topic)
    assert [e.event_id for e in contents.events] == [committed.event_id]
    assert contents.events == [committed]


def test_two_relays_on_postgresql_publish_10000_events_between_them(
    outbox: RevocationOutbox,
    topic: str,
    start_relay: RelayFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    written = write_logouts(outbox, 10_000)
    started = time.monotonic()
    first = start_relay(outbox.engine, batch_size=250, name="relay-1")
    second = start_relay(outbox.engine.url, batch_size=250, name="relay-2")

    wait_for(lambda: pending(outbox.engine) == 0, timeout=60)
    elapsed = time.monotonic() - started

    contents = read_topic(topic)
    assert set(contents.counts) == {event.event_id for event in written}
    shares = [first.status()["published"], second.status()["published"]]
    assert sum(shares) == len(contents.events)
    assert all(share > 0 for share in shares), f"one relay did all the work: {shares}"
    with capsys.disabled():
        print(
            f"\n[outbox] two relays published 10,000 events in {elapsed:.2f} s "
            f"(shares {shares}, {contents.duplicates} duplicates)"
        )


def test_a_relay_killed_mid_batch_and_restarted_loses_no_event(
    outbox: RevocationOutbox,
    database_url: str,
    topic: str,
    make_sidecar: SidecarFactory,
    topic_size: Callable[[], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    total = 5_000
    written = write_logouts(outbox, total)
    sidecar = make_sidecar()
    args = ["--batch-size", "100", "--poll-interval", "0.1"]

    def moment_to_kill() -> str:
        # The topic first, then the table: more records than marked rows means a batch the
        # broker acknowledged is not committed yet (a commit in between would be counted).
        # Once most rows are published without catching such a moment, kill between batches.
        acknowledged = topic_size()
        left = pending(outbox.engine)
        if left < 1_000:
            return "between batches"
        if left <= total - 500 and acknowledged > total - left:
            return "a batch seen acknowledged, not yet committed"
        return ""

    crashed = relay_process(database_url, topic, *args)
    try:
        moment = wait_for(moment_to_kill, timeout=60, interval=0)
        crashed.send_signal(signal.SIGKILL)
        crashed.wait(timeout=10)
    finally:
        crashed.kill()
        crashed.communicate()
    left = pending(outbox.engine)
    assert 0 < left < total, "killed while rows were still pending"

    restarted = relay_process(database_url, topic, *args)
    try:
        wait_for(lambda: pending(outbox.engine) == 0, timeout=60)
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=30) == 0, "a relay stops gracefully on SIGTERM"
    finally:
        restarted.kill()
        restarted.communicate()

    jtis = {event.jti for event in written}  # type: ignore[union-attr]
    wait_for(lambda: jtis <= sidecar.state.snapshot().jtis.keys(), timeout=30)
    contents = read_topic(topic)
    assert set(contents.counts) == {event.event_id for event in written}
    assert contents.duplicates <= 100, "at most the batch in flight is published twice"
    with capsys.disabled():
        print(
            f"\n[outbox] relay SIGKILLed with {left} of {total:,} rows pending "
            f"({moment}): after the restart every event enforced, {contents.duplicates} published twice"
        )


def test_the_password_never_reaches_the_relays_output(
    outbox: RevocationOutbox, database_url: str, topic: str
) -> None:
    process = relay_process(database_url, topic, "--poll-interval", "0.1")
    try:
        first_line = wait_for(process.stdout.readline, timeout=30)  # type: ignore[union-attr]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        stdout, stderr = process.communicate()
    assert first_line.startswith("relay publishing postgresql+psycopg://postgres:***@127.0.0.1")
    assert "jwt-revocation@" not in first_line + stdout + stderr


def test_the_trigger_notifies_at_commit_not_before(outbox: RevocationOutbox) -> None:
    import psycopg

    dsn = POSTGRES_URL.replace("+psycopg", "")
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN jwt_revocation_outbox")
        with outbox.engine.connect() as connection:
            outbox.logout_everywhere(connection, user_id="eve")
            assert list(listener.notifies(timeout=0.3, stop_after=1)) == []
            connection.commit()
        assert len(list(listener.notifies(timeout=5, stop_after=1))) == 1
        with outbox.engine.connect() as connection:
            count = connection.execute(text("SELECT count(*) FROM jwt_revocation_outbox"))
            assert count.scalar_one() == 1
