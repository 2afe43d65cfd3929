"""Row 6: acknowledged events per second from one publisher, against a raw producer.

Both send the same mixed events, encoded the same way, with ``acks=all`` and idempotence, and
wait for every acknowledgement.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from kafka import KafkaProducer

from bench.fixtures import Bench, mixed_events
from bench.harness import Report, flat, interleave
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import encode_event


@dataclass(frozen=True)
class Figures:
    """What the publish group measured: seconds to send every event, one per round."""

    events: int
    publish_many: list[float]
    raw: list[float]


def measure(bench: Bench) -> Figures:
    """Send ``publish_events`` events by ``publish_many`` and by a raw producer, interleaved."""
    count = bench.sizes.publish_events
    topic = bench.topic("publish")
    now = time.time()
    events = list(mixed_events(count, now))
    raw_records = [(e.user_id.encode(), encode_event(e)) for e in events]
    publisher = RevocationPublisher(bench.bootstrap, topic, issuer="bench")
    raw_producer = KafkaProducer(
        bootstrap_servers=bench.bootstrap, acks="all", enable_idempotence=True, linger_ms=0
    )

    def ours() -> list[float]:
        start = time.perf_counter()
        published = publisher.publish_many(events)
        assert len(published) == count
        return [time.perf_counter() - start]

    def raw() -> list[float]:
        start = time.perf_counter()
        futures = [raw_producer.send(topic, key=k, value=v) for k, v in raw_records]
        for future in futures:
            future.get(timeout=60)
        return [time.perf_counter() - start]

    try:
        samples = interleave(bench.sizes.rounds, {"publish_many": ours, "raw": raw})
    finally:
        publisher.close()
        raw_producer.close()
    return Figures(count, flat(samples["publish_many"]), flat(samples["raw"]))


def report(figures: Figures) -> list[Report]:
    """Row 6."""
    count = figures.events
    mine = count / statistics.median(figures.publish_many)
    theirs = count / statistics.median(figures.raw)
    return [
        Report(
            result=f"{mine:,.0f} events/s",
            compared=(
                f"raw `KafkaProducer` with the same bytes: {theirs:,.0f} events/s "
                f"({mine / theirs:.2f}x)"
            ),
            target="≥ 20,000 events/s",
            met=mine >= 20_000,
            notes=[
                f"publish_many of {count:,} events, each acknowledged: median {mine:,.0f} "
                f"events/s ({[round(count / v) for v in figures.publish_many]})",
                f"raw KafkaProducer (acks=all, idempotent) sending the encoded events: "
                f"{theirs:,.0f} events/s ({[round(count / v) for v in figures.raw]})",
            ],
        )
    ]
