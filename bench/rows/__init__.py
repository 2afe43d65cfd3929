"""Every row of the table, registered in one place: :data:`GROUPS`.

A group is a set of rows measured together, because they share what they measure (a filled
sidecar, a topic) or compare variants in the same rounds. Each group lives in its own module
with two functions:

- ``measure(bench) -> Figures`` builds what it measures on the real broker and Redis and
  returns the figures (a dataclass of seconds, bytes, :class:`~bench.harness.Stats`);
- ``report(figures) -> list[Report]`` turns them into the cells and notes of its rows, one
  :class:`~bench.harness.Report` per row, in the order of the group's row numbers.

Row numbers and titles are given here and nowhere else. Every group runs alone
(``python -m bench --only GROUP``): it builds all it needs, and cleans up through the
:class:`~bench.fixtures.Bench` it is given.

To add a row: write ``bench/rows/<group>.py`` with ``measure`` and ``report`` and a contract
docstring, then add one entry to :data:`GROUPS` with its row number and title. The smoke test
(``tests/integration/test_bench.py``) reads the numbers from here and runs the new group alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bench.fixtures import Bench
from bench.harness import Report, Row

from . import (
    failover,
    fanout,
    http_sidecar,
    idle,
    load,
    memory,
    outbox,
    propagation,
    publish,
    replay,
    secured,
    security_events,
    shared,
    shared_fanout,
    shared_visibility,
    verify,
)

F = TypeVar("F")


@dataclass(frozen=True)
class Group(Generic[F]):
    """Rows measured together: their numbers and titles, how to measure them, how to report."""

    titles: dict[int, str]
    """Row number -> title; ``{field}`` in a title is filled from the run's sizes."""
    measure: Callable[[Bench], F]
    report: Callable[[F], Sequence[Report]]

    def run(self, bench: Bench) -> list[Row]:
        """Measure, then report: the group's rows, their notes echoed as they come."""
        reports = self.report(self.measure(bench))
        if len(reports) != len(self.titles):
            raise ValueError(f"{len(reports)} reports for rows {sorted(self.titles)}")
        sizes = vars(bench.sizes)
        rows = [
            Row(number, title.format_map(sizes), report)
            for (number, title), report in zip(self.titles.items(), reports, strict=True)
        ]
        for row in rows:
            row.echo()
        return rows


GROUPS: dict[str, Group[Any]] = {
    "verify": Group(
        {
            1: "`verify` of an HS256 token, signature checked on every call",
            2: "`verify` of a token seen before",
        },
        verify.measure,
        verify.report,
    ),
    "memory": Group(
        {3: "memory per live revoked jti at {entries:,} entries"}, memory.measure, memory.report
    ),
    "propagation": Group(
        {4: "publish to enforced by 3 sidecars"}, propagation.measure, propagation.report
    ),
    "replay": Group(
        {
            5: "cold start over a topic of {replay_events:,} events",
            8: "warm start from a Redis snapshot, same topic",
        },
        replay.measure,
        replay.report,
    ),
    "publish": Group(
        {6: "publisher throughput, acknowledged (`acks=all`)"}, publish.measure, publish.report
    ),
    "load": Group(
        {7: "verify with 2 threads while 1,000 revocations/s are applied"},
        load.measure,
        load.report,
    ),
    "security-events": Group(
        {9: "decode a Security Event Token record (ES256, HS256)"},
        security_events.measure,
        security_events.report,
    ),
    "outbox": Group(
        {10: "transactional outbox: write, relay, commit to enforced (PostgreSQL, SQLite)"},
        outbox.measure,
        outbox.report,
    ),
    "http": Group(
        {
            11: "`POST /v1/check` over HTTP, 16 kept-alive connections (wrk), sidecar in its own process"
        },
        http_sidecar.measure,
        http_sidecar.report,
    ),
    "fanout": Group(
        {12: "fan-out: one topic, sidecars in processes of their own (1, 8, 32 in full mode)"},
        fanout.measure,
        fanout.report,
    ),
    "secured": Group(
        {13: "publish to enforced by 3 sidecars over SASL_SSL (SCRAM-SHA-512)"},
        secured.measure,
        secured.report,
    ),
    "failover": Group(
        {
            14: "three-node cluster: publishes acknowledged again after SIGKILL of a partition leader"
        },
        failover.measure,
        failover.report,
    ),
    "shared": Group(
        {
            15: "host-shared state: memory per live jti (1M and 10M in full mode)",
            16: "host-shared state: the check's time in `verify` (1M and 10M in full mode)",
            17: "host-shared state: warm start of the host writer",
        },
        shared.measure,
        shared.report,
    ),
    "shared-fanout": Group(
        {19: "fan-out: worker processes behind one host writer (32 in full mode)"},
        shared_fanout.measure,
        shared_fanout.report,
    ),
    "shared-visibility": Group(
        {20: "host-shared state: the writer's table write to every reader seeing it"},
        shared_visibility.measure,
        shared_visibility.report,
    ),
    "idle": Group(
        {18: "a quiet sidecar: requests/s to the broker and CPU"}, idle.measure, idle.report
    ),
}
"""Groups of rows by the name ``--only`` takes, in the order they run."""


def numbers() -> list[int]:
    """Every registered row number, in order."""
    return sorted(number for group in GROUPS.values() for number in group.titles)


__all__ = ["GROUPS", "Group", "numbers"]
