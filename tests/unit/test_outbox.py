"""The outbox and its relay on SQLite files, with a fake clock and a real in-process ``send``.

No broker and no network: ``send`` is a plain function that records the events it got (or
refuses them, like a broker that is down), so batching, ordering, marking, backoff, pruning,
the SQLite lock and the metrics are checked exactly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine, select, update
from sqlalchemy.orm import Session

from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.producer.outbox import (
    OUTBOX,
    OutboxRelay,
    RevocationOutbox,
    masked_url,
    outbox_ddl,
    render_relay_metrics,
)
from jwt_revocation.shared import (
    AllTokensRevoked,
    ConfigurationError,
    Event,
    InvalidEventError,
    LifecycleError,
    PublishError,
    SessionRevoked,
    TokenRevoked,
    UserDeleted,
    UserTokensRevoked,
    decode_event,
)
from jwt_revocation.shared._events import record_key
from tests.support import FakeClock, wait_for

ROOT = Path(__file__).resolve().parents[2]


class Broker:
    """A ``send`` that records every batch, or refuses them while ``down``."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.down = False
        self.refusal: PublishError | None = None
        """Raised for every batch while set: a failure that does not pass by itself."""

    def __call__(self, events: Sequence[Event]) -> None:
        if self.down:
            raise PublishError("the broker is down (test)", retriable=True)
        if self.refusal is not None:
            raise self.refusal
        self.batches.append(list(events))

    @property
    def events(self) -> list[Event]:
        return [event for batch in self.batches for event in batch]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'auth.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def outbox(engine: Engine, clock: FakeClock) -> RevocationOutbox:
    outbox = RevocationOutbox(engine, issuer="auth", clock=clock)
    outbox.create_table()
    return outbox


@pytest.fixture
def broker() -> Broker:
    return Broker()


def relay_for(engine: Engine, broker: Broker, clock: FakeClock, **kwargs: object) -> OutboxRelay:
    return OutboxRelay(engine, broker, clock=clock, listen=False, **kwargs)  # type: ignore[arg-type]


def rows(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(select(OUTBOX).order_by(OUTBOX.c.id))]


def write(outbox: RevocationOutbox, count: int, start: int = 0) -> list[Event]:
    with outbox.engine.begin() as connection:
        return [
            outbox.password_changed(connection, user_id=f"user-{i}")
            for i in range(start, start + count)
        ]


def samples(relay: OutboxRelay) -> dict[str, float]:
    """The relay's metrics as scraped: sample name -> value."""
    text = render_relay_metrics(relay).decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


# -- writing -------------------------------------------------------------------------------


def test_a_rolled_back_transaction_leaves_no_row(outbox: RevocationOutbox) -> None:
    with Session(outbox.engine) as session:
        outbox.logout(session, jti="j1", user_id="alice", expires_at=2_000_000_000)
        session.rollback()

    assert rows(outbox.engine) == []


def test_a_committed_row_holds_the_event_its_key_and_the_clocks_time(
    outbox: RevocationOutbox, clock: FakeClock
) -> None:
    with Session(outbox.engine) as session, session.begin():
        event = outbox.user_deleted(session, user_id="carol")

    (row,) = rows(outbox.engine)
    assert row["event_id"] == event.event_id
    assert row["key"] == "carol"
    assert decode_event(str(row["payload"]).encode()) == event
    assert row["created_at"] == datetime.fromtimestamp(clock.now, UTC).replace(tzinfo=None)
    assert (row["published_at"], row["attempts"], row["last_error"]) == (None, 0, None)


def test_every_method_writes_the_event_the_publisher_would_publish(
    outbox: RevocationOutbox, clock: FakeClock
) -> None:
    # The publisher's methods, built without a broker: only the event-building part runs.
    built: list[Event] = []
    publisher = RevocationPublisher.__new__(RevocationPublisher)
    publisher.issuer, publisher._clock = "auth", clock
    publisher._emit = built.append  # type: ignore[assignment,method-assign]
    claims = {"jti": "j2", "sub": "bob", "exp": 2_000_000_000, "iss": "https://idp"}
    with outbox.engine.begin() as c:
        written = [
            outbox.logout(c, jti="j1", user_id="alice", expires_at=2_000_000_000),
            outbox.password_changed(c, user_id="bob"),
            outbox.logout_everywhere(c, user_id="bob", at=1_700_000_000),
            outbox.account_disabled(c, user_id="dan"),
            outbox.user_deleted(c, user_id="carol"),
            outbox.revoke_token(c, claims),
            outbox.logout_session(c, user_id="erin", session_id="laptop"),
            outbox.revoke_all(c, token_issuer="https://idp"),
        ]
    publisher.logout(jti="j1", user_id="alice", expires_at=2_000_000_000)
    publisher.password_changed(user_id="bob")
    publisher.logout_everywhere(user_id="bob", at=1_700_000_000)
    publisher.account_disabled(user_id="dan")
    publisher.user_deleted(user_id="carol")
    publisher.revoke_token(claims)
    publisher.logout_session(user_id="erin", session_id="laptop")
    publisher.revoke_all(token_issuer="https://idp")

    ignore = {"event_id"}
    assert [e.model_dump(exclude=ignore) for e in written] == [
        e.model_dump(exclude=ignore) for e in built
    ]
    assert [type(e) for e in written] == [
        TokenRevoked,
        UserTokensRevoked,
        UserTokensRevoked,
        UserTokensRevoked,
        UserDeleted,
        TokenRevoked,
        SessionRevoked,
        AllTokensRevoked,
    ]
    assert [decode_event(str(r["payload"]).encode()) for r in rows(outbox.engine)] == written
    assert [r["key"] for r in rows(outbox.engine)][-2:] == ["erin", "*"]
    assert written[5].model_dump()["token_issuer"] == "https://idp"  # revoke_token scopes by iss


def test_invalid_arguments_raise_before_anything_is_written(outbox: RevocationOutbox) -> None:
    with outbox.engine.begin() as connection:
        with pytest.raises(InvalidEventError):
            outbox.logout(connection, jti="", user_id="alice", expires_at=2_000_000_000)
        with pytest.raises(InvalidEventError, match="without jti"):
            outbox.revoke_token(connection, {"sub": "alice", "exp": 1})
    assert rows(outbox.engine) == []


def test_create_table_is_idempotent_and_the_docs_show_the_ddl(outbox: RevocationOutbox) -> None:
    outbox.create_table()

    page = (ROOT / "docs" / "publishing.md").read_text(encoding="utf-8")
    assert outbox_ddl("postgresql") in page
    assert "CREATE TRIGGER jwt_revocation_outbox_notify" in outbox_ddl("postgresql")
    assert "TRIGGER" not in outbox_ddl("sqlite")
    with pytest.raises(ConfigurationError):
        outbox_ddl("oracle")


# -- relaying ------------------------------------------------------------------------------


def test_the_relay_publishes_oldest_first_in_batches_and_marks_them(
    outbox: RevocationOutbox, broker: Broker, clock: FakeClock
) -> None:
    written = write(outbox, 7)
    relay = relay_for(outbox.engine, broker, clock, batch_size=3)

    assert [relay.poll() for _ in range(4)] == [0.0, 0.0, 0.0, relay.poll_interval]

    assert [len(b) for b in broker.batches] == [3, 3, 1]
    assert broker.events == written
    assert all(r["published_at"] is not None and r["attempts"] == 1 for r in rows(outbox.engine))
    assert relay.status()["published"] == 7
    assert relay.pending() == (0, None)


def test_only_committed_rows_are_published(
    outbox: RevocationOutbox, broker: Broker, clock: FakeClock
) -> None:
    relay = relay_for(outbox.engine, broker, clock)
    with Session(outbox.engine) as session:
        outbox.password_changed(session, user_id="rolled-back")
        session.rollback()
    committed = write(outbox, 1)

    relay.poll()

    assert broker.events == committed


def test_a_refused_batch_stays_pending_and_the_relay_backs_off_then_goes_on(
    outbox: RevocationOutbox, broker: Broker, clock: FakeClock
) -> None:
    written = write(outbox, 2)
    relay = relay_for(outbox.engine, broker, clock, min_backoff=1, max_backoff=4)
    broker.down = True

    assert relay.poll() == 1.0
    assert relay.state == "backing_off"
    assert relay.poll() == 1.0, "no try before the backoff ends"
    clock.advance(1)
    assert relay.poll() == 2.0
    clock.advance(2)
    assert relay.poll() == 4.0
    clock.advance(4)
    assert relay.poll() == 4.0, "the backoff stops growing at max_backoff"

    assert [r["attempts"] for r in rows(outbox.engine)] == [4, 4]
    assert all("the broker is down" in str(r["last_error"]) for r in rows(outbox.engine))
    status = relay.status()
    assert status["publish_failures"] == 4
    assert status["pending_rows"] == 2
    assert status["last_error"] == "PublishError: the broker is down (test)"

    broker.down = False
    clock.advance(4)
    assert relay.poll() == 0.0
    assert broker.events == written
    assert [r["last_error"] for r in rows(outbox.engine)] == [None, None]
    clock.advance(0.1)
    relay.poll()
    assert relay.status()["state"] == "idle"
    broker.down = True
    clock.advance(1)
    write(outbox, 1)
    assert relay.poll() == relay.min_backoff, "a success resets the backoff"


def test_a_failure_that_will_not_pass_is_logged_at_error_once_a_minute_while_it_lasts(
    outbox: RevocationOutbox,
    broker: Broker,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write(outbox, 1)
    relay = relay_for(outbox.engine, broker, clock, min_backoff=1, max_backoff=10)
    broker.refusal = PublishError("topic 'auth.revocations' does not exist (test)", retriable=False)
    tried_at = []
    with caplog.at_level(logging.WARNING, logger="jwt_revocation"):
        for _ in range(20):  # tries at 0, 1, 3, 7, 15, 25, 35 ... 165 s
            tried_at.append(clock.now)
            clock.advance(relay.poll())
        alarms = [
            tried_at[i] - tried_at[0]
            for i, record in enumerate(caplog.records)
            if record.levelno == logging.ERROR
        ]
        assert len(caplog.records) == 20, "every failure is logged"
        assert alarms == [0, 65, 125]  # the first, then the first try 60 s after the last one
        assert all("does not exist" in record.getMessage() for record in caplog.records)

        caplog.clear()
        broker.refusal = None
        relay.poll()
        assert broker.batches, "published once the topic is there"
        write(outbox, 1)
        broker.down = True  # a failure that passes by itself: a warning
        relay.poll()
        broker.down, broker.refusal = False, PublishError("refused again (test)", retriable=False)
        clock.advance(relay.min_backoff)
        relay.poll()  # a new refusal after a success: at once an error again
    assert [record.levelname for record in caplog.records] == ["WARNING", "ERROR"]


def test_published_rows_are_pruned_after_the_retention_and_pending_ones_never(
    outbox: RevocationOutbox, broker: Broker, clock: FakeClock
) -> None:
    relay = relay_for(outbox.engine, broker, clock, retention="1h", prune_interval="10m")
    write(outbox, 3)
    relay.poll()  # publishes the three at t0
    broker.down = True
    write(outbox, 2, start=3)  # these stay pending

    clock.advance(3599)
    assert relay.prune() == 0
    clock.advance(2)
    assert relay.prune() == 3
    clock.advance(86_400)
    assert relay.prune() == 0
    assert [r["key"] for r in rows(outbox.engine)] == ["user-3", "user-4"]


def test_the_relay_prunes_by_itself_every_prune_interval(
    outbox: RevocationOutbox, broker: Broker, clock: FakeClock
) -> None:
    relay = relay_for(outbox.engine, broker, clock, retention=0, prune_interval="10m")
    write(outbox, 2)
    relay.poll()  # prunes nothing (none published yet), then publishes
    clock.advance(60)
    relay.poll()
    assert len(rows(outbox.engine)) == 2, "the next prune is due 10 minutes after the last"
    clock.advance(540)
    relay.poll()
    assert rows(outbox.engine) == []


def test_status_and_metrics_give_pending_rows_and_the_oldest_ones_age(
    outbox: RevocationOutbox, broker: Broker, clock: FakeClock
) -> None:
    relay = relay_for(outbox.engine, broker, clock, name="relay-a")
    write(outbox, 1)
    clock.advance(30)
    write(outbox, 2, start=1)
    clock.advance(12.5)

    status = relay.status()
    assert (status["pending_rows"], status["oldest_pending_seconds"]) == (3, 42.5)
    metrics = samples(relay)
    assert metrics["jwt_revocation_outbox_pending_rows"] == 3
    assert metrics["jwt_revocation_outbox_oldest_pending_seconds"] == 42.5
    assert metrics["jwt_revocation_outbox_publish_failures_total"] == 0

    broker.down = True
    relay.poll()
    broker.down = False
    clock.advance(1)
    relay.poll()
    metrics = samples(relay)
    assert metrics["jwt_revocation_outbox_pending_rows"] == 0
    assert metrics["jwt_revocation_outbox_published_total"] == 3
    assert metrics["jwt_revocation_outbox_publish_failures_total"] == 1


def test_a_row_that_holds_no_event_stops_the_relay_loudly_instead_of_being_skipped(
    outbox: RevocationOutbox, broker: Broker, clock: FakeClock
) -> None:
    write(outbox, 1)
    with outbox.engine.begin() as connection:
        connection.execute(update(OUTBOX).values(payload="not json"))
    relay = relay_for(outbox.engine, broker, clock)

    relay.poll()

    assert broker.events == []
    status = relay.status()
    assert status["database_errors"] == 1
    assert "holds no valid event" in status["last_error"]
    assert status["pending_rows"] == 1


def test_on_sqlite_a_second_relay_stands_by_until_the_first_stops(
    outbox: RevocationOutbox, clock: FakeClock
) -> None:
    first_broker, second_broker = Broker(), Broker()
    first = relay_for(outbox.engine, first_broker, clock)
    second = relay_for(outbox.engine, second_broker, clock)
    write(outbox, 2)
    first.poll()
    write(outbox, 1, start=2)

    assert second.poll() == second.poll_interval
    assert second.state == "standby"
    assert second_broker.events == []

    stop = threading.Event()
    stop.set()
    first.run(stop)  # a stopped run releases the lock
    second.poll()
    assert [record_key(e) for e in second_broker.events] == ["user-2"]


def test_run_relays_in_a_thread_until_stopped(
    outbox: RevocationOutbox, broker: Broker, engine: Engine
) -> None:
    relay = OutboxRelay(engine, broker, poll_interval=0.01, listen=False)
    with relay:
        written = write(outbox, 5)
        wait_for(lambda: len(broker.events) == 5)
    assert broker.events == written
    assert relay.state == "stopped"
    with pytest.raises(LifecycleError):
        relay.start()


def test_a_woken_relay_publishes_a_new_row_without_waiting_for_its_poll_interval(
    outbox: RevocationOutbox, broker: Broker, engine: Engine
) -> None:
    steps: list[float] = []

    def clock() -> float:  # read once at the start of every step
        steps.append(time.time())
        return steps[-1]

    first = write(outbox, 1)
    relay = OutboxRelay(engine, broker, poll_interval=3600, listen=False, clock=clock)
    with relay:
        # The first step publishes (state "publishing"); the second finds nothing and turns
        # "idle": the relay then waits an hour unless woken.
        wait_for(lambda: len(steps) >= 2 and relay.state == "idle")
        assert broker.events == first
        second = write(outbox, 1)
        relay.wake()
        wait_for(lambda: broker.events == first + second)


def test_the_relay_survives_an_unexpected_error_in_send(
    outbox: RevocationOutbox, engine: Engine
) -> None:
    got: list[Event] = []

    def flaky(events: Sequence[Event]) -> None:
        if not got:
            got.append(events[0])
            raise RuntimeError("a bug in send")
        got.extend(events)

    relay = OutboxRelay(engine, flaky, poll_interval=0.01, min_backoff=0.01, listen=False)
    written = write(outbox, 1)
    with relay:
        wait_for(lambda: len(got) == 2)
    assert got == written * 2
    assert relay.status()["last_error"] == "RuntimeError: a bug in send"


def test_arguments_are_checked(engine: Engine, broker: Broker) -> None:
    with pytest.raises(ConfigurationError):
        OutboxRelay(engine, broker, batch_size=0)
    with pytest.raises(ConfigurationError):
        OutboxRelay(engine, broker, poll_interval=0)
    with pytest.raises(ConfigurationError):
        RevocationOutbox(engine, issuer="")


def test_urls_are_logged_with_the_password_masked() -> None:
    engine = create_engine("postgresql+psycopg://auth:s3cret@db.example:5432/auth")
    assert masked_url(engine) == "postgresql+psycopg://auth:***@db.example:5432/auth"


def test_a_fake_clock_never_stalls_the_loop(outbox: RevocationOutbox, broker: Broker) -> None:
    frozen = FakeClock()
    relay = OutboxRelay(outbox.engine, broker, clock=frozen, poll_interval=0.01, listen=False)
    started = time.monotonic()
    with relay:
        write(outbox, 1)
        wait_for(lambda: broker.events)
    assert time.monotonic() - started < 5


def test_the_outbox_module_exports_exactly_its_public_names() -> None:
    import types

    import jwt_revocation.producer.outbox as module

    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(public) == sorted(module.__all__)
