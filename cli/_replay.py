"""``jwt-revocation replay``: read the topic into a state, with progress and a summary.

It reads through a sidecar (every partition, no group, the same decoding and merge rules) but for
inspection: ``--since`` may choose a shorter window than a sidecar's, and
``--from-beginning`` reads everything the topic still holds.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TextIO

from jwt_revocation.consumer import RevocationSidecar, RevocationState
from jwt_revocation.shared import (
    ReplicationTooLowError,
    RetentionTooShortError,
    RevocationSettings,
    SidecarUnavailableError,
)

from ._kafka import checked_topic

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
    """Read every partition from ``now - since`` (or the beginning) up to the end offsets now.

    The reading is a sidecar's own (:class:`RevocationSidecar` with ``replay_window``), started
    without snapshots and stopped once caught up. A topic that keeps events for less than
    ``max_token_lifetime``, or that one broker's loss could empty, can still be inspected; a
    missing one is an error.
    """
    started = time.monotonic()
    with contextlib.suppress(RetentionTooShortError, ReplicationTooLowError):
        checked_topic(settings, reach=min(timeout, 10.0))
    sidecar = RevocationSidecar.from_settings(
        settings,
        name="jwt-revocation-replay",
        verify_topic=False,
        snapshots=None,
        replay_window="all" if since is None else since,
        max_staleness=max(timeout, settings.max_staleness.total_seconds()),
        consumer_config={"request_timeout_ms": 10_000},
    )
    deadline = started + timeout
    try:
        while True:
            try:
                sidecar.start(timeout=0.2)
                break
            except SidecarUnavailableError as err:
                if err.reason != "loading" or time.monotonic() > deadline:
                    raise
            done, total = sidecar.progress.replayed()
            if progress is not None and total:
                progress(done, total, time.monotonic() - started)
        if progress is not None:
            progress(*sidecar.progress.replayed(), time.monotonic() - started)
    finally:
        sidecar.stop()
    counts = sidecar.counts
    return ReplayResult(
        sidecar.state,
        records=sum(counts.applied.values()) + sum(counts.skipped.values()),
        events=Counter(counts.applied),
        skipped=Counter(counts.skipped),
        elapsed=time.monotonic() - started,
    )


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
