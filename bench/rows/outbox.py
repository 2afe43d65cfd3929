"""Row 10: the transactional outbox, against publishing directly.

Three figures of one run, on the local PostgreSQL of `make services` (127.0.0.1:55432, or
``$JWT_REVOCATION_BENCH_DATABASE_URL``) in a schema of the run's own, dropped at the end, and a
SQLite file in a temporary folder:

1. the cost of one outbox write inside an open transaction (the INSERT, not the commit),
   on PostgreSQL and SQLite, against a direct ``password_changed`` publish (until
   ``acks=all``), the call it replaces in a request;
2. the relay's throughput (committed rows to acknowledged and marked) against the
   publisher's own ``publish_many`` of the same events;
3. commit to enforced: from a logout's commit returning to a sidecar rejecting the token, with
   the relay woken by LISTEN/NOTIFY (its poll interval is a minute, so only the NOTIFY at
   commit can wake it in time).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from bench.fixtures import Bench, mixed_events, verifier
from bench.harness import Report, Stats, flat, interleave, ms, us
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.producer.outbox import OutboxRelay, RevocationOutbox

DATABASE_URL = os.environ.get(
    "JWT_REVOCATION_BENCH_DATABASE_URL",
    "postgresql+psycopg://postgres:jwt-revocation@127.0.0.1:55432/jwt_revocation",
)
WRITES_PER_TRANSACTION = 100


@dataclass(frozen=True)
class Figures:
    """What the outbox group measured, in seconds."""

    write_postgresql: Stats
    write_sqlite: Stats
    round_trip: Stats
    """A bare ``SELECT 1`` on the same PostgreSQL connection: the floor of any write."""
    direct_publish: Stats
    events: int
    relay: list[float]
    """Seconds for the relay to drain ``events`` committed rows, one per round."""
    publish_many: list[float]
    commit_to_enforced: Stats


def measure(bench: Bench) -> Figures:
    """Measure the three figures; the relay and ``publish_many`` interleaved by round."""
    topic = bench.topic("outbox")
    calls = bench.sizes.calls // 4
    with _schema() as postgresql, _sqlite() as sqlite:
        pg_outbox = RevocationOutbox(postgresql, issuer="bench")
        pg_outbox.create_table()
        lite_outbox = RevocationOutbox(sqlite, issuer="bench")
        lite_outbox.create_table()
        with RevocationPublisher(bench.bootstrap, topic, issuer="bench") as publisher:
            publisher.password_changed(user_id="warm-up")
            write_pg = _write_times(pg_outbox, calls)
            round_trip = _round_trips(postgresql, calls)
            write_lite = _write_times(lite_outbox, calls)
            direct = _publish_times(publisher, calls // 10)
            relay, many = _throughput(bench, pg_outbox, publisher)
            enforced = _commit_to_enforced(bench, topic, pg_outbox, publisher)
    return Figures(
        Stats.of(write_pg),
        Stats.of(write_lite),
        Stats.of(round_trip),
        Stats.of(direct),
        bench.sizes.publish_events,
        relay,
        many,
        enforced,
    )


def _write_times(outbox: RevocationOutbox, calls: int) -> list[float]:
    """Seconds per ``password_changed`` write, in transactions of 100 writes."""
    times: list[float] = []
    while len(times) < calls:
        with outbox.engine.begin() as connection:
            for _ in range(WRITES_PER_TRANSACTION):
                user = f"user-{len(times)}"
                start = time.perf_counter()
                outbox.password_changed(connection, user_id=user)
                times.append(time.perf_counter() - start)
    return times


def _round_trips(engine: Engine, calls: int) -> list[float]:
    times = []
    with engine.begin() as connection:
        for _ in range(calls):
            start = time.perf_counter()
            connection.exec_driver_sql("SELECT 1")
            times.append(time.perf_counter() - start)
    return times


def _publish_times(publisher: RevocationPublisher, calls: int) -> list[float]:
    times = []
    for i in range(calls):
        start = time.perf_counter()
        publisher.password_changed(user_id=f"direct-{i}")
        times.append(time.perf_counter() - start)
    return times


def _throughput(
    bench: Bench, outbox: RevocationOutbox, publisher: RevocationPublisher
) -> tuple[list[float], list[float]]:
    count = bench.sizes.publish_events
    events = list(mixed_events(count, time.time()))
    relay = OutboxRelay(outbox.engine, publisher.publish_many, listen=False, retention=None)

    def drain() -> list[float]:
        with outbox.engine.begin() as connection:
            for event in mixed_events(count, time.time()):
                outbox.write(connection, event)
        start = time.perf_counter()
        while relay.poll() == 0.0:
            pass
        elapsed = time.perf_counter() - start
        assert relay.pending() == (0, None)
        return [elapsed]

    def direct() -> list[float]:
        start = time.perf_counter()
        publisher.publish_many(events)
        return [time.perf_counter() - start]

    samples = interleave(min(bench.sizes.rounds, 3), {"relay": drain, "publish_many": direct})
    return flat(samples["relay"]), flat(samples["publish_many"])


def _commit_to_enforced(
    bench: Bench, topic: str, outbox: RevocationOutbox, publisher: RevocationPublisher
) -> Stats:
    sidecar = bench.sidecar(topic, "bench-outbox-service")
    check = verifier(sidecar, cache_size=0)
    relay = OutboxRelay(outbox.engine, publisher.publish_many, poll_interval=60, retention=None)
    delays: list[float] = []
    try:
        relay.start()
        deadline = time.monotonic() + 30
        while not relay.status()["listening"]:
            assert time.monotonic() < deadline, "the relay never started to LISTEN"
            time.sleep(0.01)
        for i in range(bench.sizes.propagation_events):
            jti = str(uuid.uuid4())
            with outbox.engine.begin() as connection:
                outbox.logout(
                    connection, jti=jti, user_id=f"user-{i}", expires_at=time.time() + 600
                )
            committed = time.perf_counter()
            while check.is_revoked(jti=jti) is None:
                time.sleep(0.00005)  # let the relay and sidecar threads have the GIL
            delays.append(time.perf_counter() - committed)
            time.sleep(0.002)
    finally:
        relay.stop()
        sidecar.stop()
    return Stats.of(delays)


@contextmanager
def _schema() -> Iterator[Engine]:
    """An engine whose connections work in a fresh schema, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(DATABASE_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_engine(f"{DATABASE_URL}?options=-csearch_path%3D{schema}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextmanager
def _sqlite() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'auth.db'}")
        try:
            yield engine
        finally:
            engine.dispose()


def report(figures: Figures) -> list[Report]:
    """Row 10."""
    pg, lite, direct = figures.write_postgresql, figures.write_sqlite, figures.direct_publish
    relay = figures.events / statistics.median(figures.relay)
    many = figures.events / statistics.median(figures.publish_many)
    enforced = figures.commit_to_enforced
    return [
        Report(
            result=(
                f"write {us(pg.median)} (PostgreSQL), {us(lite.median)} (SQLite); relay "
                f"{relay:,.0f} events/s; commit → enforced p50 {ms(enforced.median)}, "
                f"p99 {ms(enforced.p99)}"
            ),
            compared=(
                f"direct publish {ms(direct.median)} per call; publish_many {many:,.0f} events/s "
                f"(relay {relay / many:.2f}x)"
            ),
            target="write < 1/5 of a direct publish; relay ≥ 50 % of publish_many; p99 < 50 ms",
            met=pg.median < direct.median / 5 and relay >= many / 2 and enforced.p99 < 0.05,
            notes=[
                f"outbox write inside an open transaction (the INSERT, not the commit): "
                f"PostgreSQL p50 {us(pg.median)}, p99 {us(pg.p99)}; SQLite file p50 "
                f"{us(lite.median)}, p99 {us(lite.p99)} ({pg.count:,} writes each); a bare "
                f"SELECT 1 round trip on the same PostgreSQL connection: p50 "
                f"{us(figures.round_trip.median)}",
                f"direct password_changed publish until acks=all: p50 {ms(direct.median)}, "
                f"p99 {ms(direct.p99)}",
                f"relay draining {figures.events:,} committed rows (batches of 500, marked "
                f"after each acknowledgement): {[round(figures.events / v) for v in figures.relay]} "
                f"events/s; publish_many of the same count: "
                f"{[round(figures.events / v) for v in figures.publish_many]}",
                f"commit → enforced by a sidecar, relay woken by LISTEN/NOTIFY: p50 "
                f"{ms(enforced.median)}, p99 {ms(enforced.p99)} over {enforced.count:,} commits",
            ],
        )
    ]
