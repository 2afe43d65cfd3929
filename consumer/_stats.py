"""What a sidecar counts (events applied, records skipped, publish-to-apply delays) and the
point-in-time view it reports (:class:`SidecarStats`, served by ``/v1/status`` and metrics).

The counters are written by the consumer thread only and read anywhere; a reader may see a
count one record behind, never a torn one.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ._health import SidecarStatus
from ._progress import PartitionStats

DELAY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds, in seconds, of the publish-to-apply delay histogram."""


class DelayHistogram:
    """A cumulative histogram of publish-to-apply delays, in :data:`DELAY_BUCKETS`."""

    def __init__(self) -> None:
        self.counts = [0] * (len(DELAY_BUCKETS) + 1)
        self.sum = 0.0

    def record(self, delay: float) -> None:
        """Count one delay in seconds (a negative one, from clock skew, counts as 0)."""
        delay = max(0.0, delay)
        self.counts[bisect.bisect_left(DELAY_BUCKETS, delay)] += 1
        self.sum += delay

    def cumulative(self) -> tuple[tuple[float, int], ...]:
        """(upper bound in seconds, count of delays at most that), the last bound infinite."""
        return tuple(
            zip((*DELAY_BUCKETS, math.inf), itertools.accumulate(self.counts), strict=True)
        )


@dataclass
class RecordCounts:
    """Events applied by type, records skipped by reason, odd events applied by kind, records
    that failed by error type."""

    applied: Counter[str] = field(default_factory=Counter)
    """Events applied, by type (duplicates and moot events included)."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Records skipped, by reason."""
    anomalies: Counter[str] = field(default_factory=Counter)
    """Events applied despite something odd, by kind (``key_mismatch``)."""
    failed: Counter[str] = field(default_factory=Counter)
    """Records whose decoding raised an unexpected error (a bug), by the error's type; never
    skipped: each count is one attempt, and the consumer restarts at the record."""


@dataclass(frozen=True)
class SidecarStats:
    """A point-in-time view of a sidecar, for status pages, logs and tests."""

    status: SidecarStatus
    ready: bool
    entries: dict[str, int]
    applied: dict[str, int]
    """Events applied, by type (duplicates and moot events included)."""
    skipped: dict[str, int]
    """Records skipped, by reason."""
    anomalies: dict[str, int]
    """Events applied despite something odd, by kind (``key_mismatch``)."""
    partitions: dict[int, PartitionStats]
    seconds_since_contact: float | None
    restarts: int
    last_error: str | None
    detail: str = ""
    started_from: str = "replay"
    """``replay``, ``snapshot <id>``, or ``replay (<why the snapshot was not used>)``."""
    last_snapshot: str | None = None
    """The id of the last snapshot this sidecar wrote."""
    mirrored: int = 0
    """Events handed to the mirror (the Redis sink) since start."""
    snapshots_unused: dict[str, int] = field(default_factory=dict)
    """Snapshots not loaded at a start, by why (``missing``, ``unsigned``, ``forged``...)."""
    apply_delay: tuple[tuple[float, int], ...] = ()
    """Cumulative histogram of publish-to-apply delays once caught up: (upper bound s, count)."""
    apply_delay_sum: float = 0.0
    failed: dict[str, int] = field(default_factory=dict)
    """Records whose decoding raised an unexpected error (a bug), by the error's type: not
    skipped, the consumer restarts at them (see ``restarts`` and ``last_error``)."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "status": self.status.value,
            "ready": self.ready,
            "detail": self.detail,
            "entries": self.entries,
            "applied": self.applied,
            "skipped": self.skipped,
            "anomalies": self.anomalies,
            "failed": self.failed,
            "partitions": {
                str(p): {"position": s.position, "end_offset": s.end_offset, "lag": s.lag}
                for p, s in sorted(self.partitions.items())
            },
            "seconds_since_contact": self.seconds_since_contact,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "started_from": self.started_from,
            "last_snapshot": self.last_snapshot,
            "mirrored": self.mirrored,
            "snapshots_unused": self.snapshots_unused,
            "apply_delay": {
                "buckets": {str(bound): n for bound, n in self.apply_delay},
                "sum": self.apply_delay_sum,
                "count": self.apply_delay[-1][1] if self.apply_delay else 0,
            },
        }
