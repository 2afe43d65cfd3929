"""``jwt-revocation replay``: read the topic into a state, with progress and a summary.

It reads like a sidecar (every partition, no group, the same decoding and merge rules) but for
inspection: ``--since`` may choose a shorter window than a sidecar's, and
``--from-beginning`` reads everything the topic still holds.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TextIO

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from jwt_revocation.consumer import RevocationState
from jwt_revocation.shared import (
    RecordError,
    RevocationSettings,
    SecurityEventVerifier,
    TopicNotFoundError,
    record_decoder,
)

Progress = Callable[[int, int, float], None]
"""Called with records read, records to read, and seconds since the start."""


@dataclass
class ReplayResult:
    """What a replay read and what it left in the state."""

    state: RevocationState
    records: int = 0
    events: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        applied = sum(self.events.values())
        return {
            "records": self.records,
            "events": dict(self.events),
            "skipped": dict(self.skipped),
            "entries": self.state.counts(),
            "elapsed_s": round(self.elapsed, 3),
            "events_per_s": round(applied / self.elapsed) if self.elapsed > 0 else None,
        }


def replay(
    settings: RevocationSettings,
    *,
    since: timedelta | None,
    progress: Progress | None = None,
    timeout: float = 120.0,
) -> ReplayResult:
    """Read every partition from ``now - since`` (or the beginning) up to the end offsets now."""
    started = time.monotonic()
    now = time.time()
    state = RevocationState(
        max_token_lifetime=settings.max_token_lifetime.total_seconds(),
        max_clock_skew=settings.max_clock_skew.total_seconds(),
    )
    result = ReplayResult(state)
    verifier = None
    if settings.set_verify_key is not None:
        verifier = SecurityEventVerifier.from_settings(settings)
    decode = record_decoder(
        verifier, max_token_lifetime=settings.max_token_lifetime.total_seconds()
    )
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="jwt-revocation-replay",
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=10_000,
    )
    try:
        ids = consumer.partitions_for_topic(settings.topic)
        if not ids:
            raise TopicNotFoundError(f"topic {settings.topic!r} does not exist")
        parts = [TopicPartition(settings.topic, p) for p in sorted(ids)]
        consumer.assign(parts)
        ends = consumer.end_offsets(parts)
        starts = consumer.beginning_offsets(parts)
        if since is not None:
            found = consumer.offsets_for_times(
                dict.fromkeys(parts, int((now - since.total_seconds()) * 1000))
            )
            starts = {tp: ends[tp] if found.get(tp) is None else found[tp].offset for tp in parts}
        for tp in parts:
            consumer.seek(tp, starts[tp])
        total = sum(ends[tp] - starts[tp] for tp in parts)
        positions = dict(starts)
        deadline = started + timeout
        while any(positions[tp] < ends[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise KafkaError(f"replay did not reach the end offsets within {timeout} s")
            for tp, records in consumer.poll(timeout_ms=200).items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    positions[tp] = record.offset + 1
                    result.records += 1
                    try:
                        event = decode(record.value)
                    except RecordError as err:
                        result.skipped[err.reason] += 1
                        continue
                    state.apply(event, now)
                    result.events[event.type] += 1
            if progress is not None:
                progress(result.records, total, time.monotonic() - started)
    finally:
        consumer.close(autocommit=False)
    result.elapsed = time.monotonic() - started
    return result


def progress_bar(stream: TextIO = sys.stderr, width: int = 30) -> Progress:
    """A one-line progress bar, redrawn at most five times a second."""
    last = [0.0]

    def draw(done: int, total: int, elapsed: float) -> None:
        if done < total and elapsed - last[0] < 0.2:
            return
        last[0] = elapsed
        share = 1.0 if total == 0 else done / total
        filled = int(share * width)
        rate = done / elapsed if elapsed > 0 else 0.0
        stream.write(
            f"\rreplaying [{'#' * filled}{' ' * (width - filled)}] {share:6.1%} "
            f"{done:,}/{total:,} records {rate:,.0f}/s"
        )
        if done >= total:
            stream.write("\n")
        stream.flush()

    return draw
