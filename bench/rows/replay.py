"""Rows 5 and 8: a sidecar's start over a full topic, by replay and from a Redis snapshot.

One topic of ``replay_events`` mixed events serves both rows, and their three variants run
interleaved in the same rounds: a cold start that replays the whole topic, a raw kafka-python
consumer that reads every record without decoding it, and a warm start from a snapshot
written once before the rounds. Row 8 compares the warm start with row 5's replay.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.fixtures import LIFETIME, Bench, mixed_events
from bench.harness import Report, flat, interleave
from jwt_revocation.consumer import RedisSnapshots, RevocationState
from jwt_revocation.shared import decode_event, encode_event


@dataclass(frozen=True)
class Snapshot:
    """The snapshot the warm starts begin from."""

    id: str
    size: int
    """Bytes of every value the store keeps in Redis for it (body, header, latest id)."""
    save_seconds: float


@dataclass(frozen=True)
class Figures:
    """What the replay group measured; times in seconds, one per start."""

    events: int
    cold: list[float]
    """Sidecar ``start()`` to ready, replaying the topic."""
    raw: list[float]
    """A raw consumer reading every record, without decoding."""
    warm: list[float]
    """Sidecar ``start()`` to ready from the snapshot."""
    cold_entries: int
    warm_entries: int
    decode_us: float
    """Decoding and validating one record, timed alone."""
    apply_us: float
    """Merging one decoded event into a state, timed alone."""
    fill_seconds: float
    snapshot: Snapshot


def measure(bench: Bench) -> Figures:
    """Fill a topic, snapshot it, then time cold, raw and warm starts round by round."""
    count = bench.sizes.replay_events
    topic = bench.topic("replay")
    now = time.time()
    records = [(e.user_id.encode(), encode_event(e)) for e in mixed_events(count, now)]
    fill_seconds = _produce_raw(bench.bootstrap, topic, records)
    decode_us, apply_us = _decode_and_apply_cost([value for _, value in records[:100_000]], now)
    del records
    store = RedisSnapshots(bench.redis, prefix=f"{bench.prefix}:snapshots")
    snapshot = _write_snapshot(bench, topic, store)
    entries: list[int] = []
    warm_entries: list[int] = []

    def cold_start() -> list[float]:
        start = time.perf_counter()
        sidecar = bench.sidecar(topic, "bench-replay")
        elapsed = time.perf_counter() - start
        entries.append(len(sidecar.state))
        sidecar.stop()
        return [elapsed]

    def warm_start() -> list[float]:
        start = time.perf_counter()
        sidecar = bench.sidecar(topic, "bench-warm", snapshots=store, snapshot_interval=0)
        elapsed = time.perf_counter() - start
        assert sidecar.stats().started_from == f"snapshot {snapshot.id}"
        warm_entries.append(len(sidecar.state))
        sidecar.stop()
        return [elapsed]

    def raw() -> list[float]:
        elapsed, seen = _consume_raw(bench.bootstrap, topic)
        assert seen == count, f"raw consumer read {seen} of {count} records"
        return [elapsed]

    samples = interleave(
        max(2, bench.sizes.rounds - 2), {"sidecar": cold_start, "raw": raw, "warm": warm_start}
    )
    return Figures(
        events=count,
        cold=flat(samples["sidecar"]),
        raw=flat(samples["raw"]),
        warm=flat(samples["warm"]),
        cold_entries=entries[-1],
        warm_entries=warm_entries[-1],
        decode_us=decode_us,
        apply_us=apply_us,
        fill_seconds=fill_seconds,
        snapshot=snapshot,
    )


def _produce_raw(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=512 * 1024
    )
    start = time.perf_counter()
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    elapsed = time.perf_counter() - start
    producer.close()
    return elapsed


def _consume_raw(bootstrap: str, topic: str) -> tuple[float, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    total = sum(consumer.end_offsets(parts).values())
    start = time.perf_counter()
    seen = 0
    while seen < total:
        seen += sum(len(records) for records in consumer.poll(timeout_ms=500).values())
    elapsed = time.perf_counter() - start
    consumer.close()
    return elapsed, seen


def _decode_and_apply_cost(values: list[bytes], now: float) -> tuple[float, float]:
    """Microseconds per record to decode the values, and to merge the events into a state.

    Each event is dropped once used, as in the sidecar (keeping them all would time the
    garbage collector instead).
    """
    start = time.perf_counter()
    for value in values:
        decode_event(value)
    decoded = time.perf_counter() - start
    state = RevocationState(max_token_lifetime=LIFETIME.total_seconds(), max_clock_skew=60)
    start = time.perf_counter()
    for value in values:
        state.apply(decode_event(value), now)
    both = time.perf_counter() - start
    return decoded / len(values) * 1e6, (both - decoded) / len(values) * 1e6


def _write_snapshot(bench: Bench, topic: str, store: RedisSnapshots) -> Snapshot:
    """Replay the topic once and write a snapshot of the state to ``store``."""
    writer = bench.sidecar(topic, "bench-snapshot", snapshots=store, snapshot_interval=0)
    saving = time.perf_counter()
    snapshot_id = writer.save_snapshot()
    save_seconds = time.perf_counter() - saving
    writer.stop()
    return Snapshot(snapshot_id, _stored_bytes(store), save_seconds)


def _stored_bytes(store: RedisSnapshots) -> int:
    """Bytes of every value ``store`` keeps in Redis: the keys under its prefix, by type.

    ``RedisSnapshots`` says nothing of a snapshot's size, and its key layout is its own; what
    is known is that it writes only under its prefix, which holds nothing else here.
    """
    r = store.client
    size = 0
    for key in r.scan_iter(match=f"{store.prefix}:*"):
        kind = r.type(key)
        if kind == b"hash":
            size += sum(int(r.hstrlen(key, name)) for name in r.hkeys(key))
        elif kind == b"string":
            size += int(r.strlen(key))
    return size


def report(figures: Figures) -> list[Report]:
    """Rows 5 and 8."""
    return [_cold_report(figures), _warm_report(figures)]


def _cold_report(f: Figures) -> Report:
    count = f.events
    ours, base = statistics.median(f.cold), statistics.median(f.raw)
    rate = count / ours
    per_event = ours / count * 1e6
    return Report(
        result=f"ready in {ours:.2f} s: {rate:,.0f} events/s",
        compared=f"raw kafka-python, no decoding: {count / base:,.0f} records/s ({ours / base:.1f}x the time)",
        target="≥ 100,000 events/s, ready < 15 s",
        met=rate >= 100_000 and ours < 15,
        notes=[
            f"sidecar start() to ready: median {ours:.2f} s over {len(f.cold)} "
            f"cold starts ({[round(v, 2) for v in f.cold]}), {f.cold_entries:,} live entries",
            f"raw KafkaConsumer reading every record without decoding: median {base:.2f} s "
            f"({[round(v, 2) for v in f.raw]})",
            f"where a cold start's {per_event:.1f} µs per event go: decoding and validating "
            f"{f.decode_us:.1f} µs, merging into the state {f.apply_us:.1f} µs (both timed alone "
            f"on the same records), the rest {per_event - f.decode_us - f.apply_us:.1f} µs in "
            "kafka-python fetching and parsing records and in the loop; kafka-python alone "
            f"takes {base / count * 1e6:.1f} µs per record",
            f"filling the topic with a raw producer took {f.fill_seconds:.1f} s",
        ],
    )


def _warm_report(f: Figures) -> Report:
    ours, warm = statistics.median(f.cold), statistics.median(f.warm)
    same = f.warm_entries == f.cold_entries
    return Report(
        result=f"ready in {warm:.2f} s with {f.warm_entries:,} live entries",
        compared=f"full replay {ours:.2f} s ({ours / warm:.1f}x longer)",
        target="ready < 3 s, faster than full replay",
        met=warm < 3 and warm < ours and same,
        notes=[
            f"start() to ready from the snapshot: median {warm:.2f} s "
            f"({[round(v, 2) for v in f.warm]}); same live entries as a full replay: {same}",
            f"the snapshot: {f.snapshot.size / 1e6:.1f} MB compressed in Redis, written in "
            f"{f.snapshot.save_seconds:.2f} s",
        ],
    )
