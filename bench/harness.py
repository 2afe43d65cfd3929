"""What every benchmark row shares: interleaved rounds, statistics, the machine, the table.

Absolute times drift on a shared machine, so rows compare variants measured in the same run:
each round runs every variant once, in an order that rotates from round to round, and a row
reports medians and p99 over all rounds together with ratios between variants.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    """How much work each row does."""

    rounds: int
    calls: int
    """Calls per variant per round, for the verify rows."""
    entries: int
    """Live revoked jtis for the verify and memory rows."""
    propagation_events: int
    replay_events: int
    publish_events: int
    load_seconds: float
    """Length of each quiet or loaded round of the verify-under-load row."""
    http_seconds: int
    """Length of each wrk run of the HTTP row."""
    redis_requests: int
    """``GET`` requests of each redis-benchmark run of the HTTP row."""
    fanout: tuple[int, ...]
    """The numbers of sidecar processes the fan-out row runs, in turn."""
    fanout_events: int
    """Logouts published to each number of sidecars."""
    quiet_seconds: float
    """Length of the fan-out row's quiet intervals, over which idle CPU is read."""
    shared_entries: tuple[int, ...] = (20_000,)
    """Live jtis of the host-shared state rows, in turn."""


FULL = Sizes(
    rounds=5,
    calls=20_000,
    entries=1_000_000,
    propagation_events=1_000,
    replay_events=1_000_000,
    publish_events=50_000,
    load_seconds=3.0,
    http_seconds=5,
    redis_requests=200_000,
    fanout=(1, 8, 32),
    fanout_events=1_000,
    quiet_seconds=10.0,
    shared_entries=(1_000_000, 10_000_000),
)
QUICK = Sizes(
    rounds=2,
    calls=2_000,
    entries=20_000,
    propagation_events=50,
    replay_events=10_000,
    publish_events=2_000,
    load_seconds=0.5,
    http_seconds=1,
    redis_requests=5_000,
    fanout=(1, 2),
    fanout_events=20,
    quiet_seconds=1.0,
)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Stats:
    """Median, p99 and count of a sample of seconds."""

    median: float
    p99: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        return cls(statistics.median(values), percentile(values, 99), len(values))


def interleave(
    rounds: int, variants: dict[str, Callable[[], list[float]]]
) -> dict[str, list[list[float]]]:
    """Run every variant once per round, rotating the order; return each one's samples by round."""
    names = list(variants)
    samples: dict[str, list[list[float]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(variants[name]())
    return samples


def flat(rounds: list[list[float]]) -> list[float]:
    """All samples of all rounds."""
    return [value for samples in rounds for value in samples]


def time_calls(call: Callable[[T], object], inputs: Sequence[T]) -> list[float]:
    """Seconds taken by each call, one input per call."""
    clock = time.perf_counter_ns
    out = []
    for item in inputs:
        start = clock()
        call(item)
        out.append((clock() - start) / 1e9)
    return out


def timer_overhead() -> float:
    """The median cost of one pair of clock reads, in seconds (included in every call timing)."""
    clock = time.perf_counter_ns
    reads = []
    for _ in range(10_000):
        start = clock()
        reads.append(clock() - start)
    return statistics.median(reads) / 1e9


def load_average() -> float:
    """The machine's 1-minute load average: what else shares the cores while a row runs."""
    return os.getloadavg()[0]


def us(seconds: float) -> str:
    """Seconds as microseconds, for the table."""
    return f"{seconds * 1e6:.2f} µs"


def ms(seconds: float) -> str:
    """Seconds as milliseconds, for the table."""
    return f"{seconds * 1e3:.2f} ms"


@dataclass(frozen=True)
class Report:
    """What a row says about its figures: every cell of its line but the number and title."""

    result: str
    compared: str
    target: str
    met: bool
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Row:
    """One line of the table: its number and title, given by the registry, and its report."""

    number: int
    measurement: str
    report: Report

    def echo(self) -> None:
        """Print the row's details while the benchmark runs."""
        for line in self.report.notes:
            print(f"  [{self.number}] {line}", flush=True)


def machine(redis_version: str) -> list[str]:
    """A description of where the figures were measured."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    packages = ", ".join(
        f"{name} {_version(name)}"
        for name in ("kafka-python", "PyJWT", "pydantic", "redis", "hiredis", "crc32c")
    )
    return [
        f"CPU: {cpu}, {os.cpu_count()} logical cores",
        f"Python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.system()} {platform.release()}",
        f"Packages: {packages}",
        f"Kafka broker (single node, KRaft) on 127.0.0.1:9092; Redis {redis_version} on "
        "127.0.0.1:6379; both on this machine, over loopback",
    ]


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def render(rows: list[Row], *, mode: str, about: list[str], elapsed: float) -> str:
    """The Markdown written to BENCHMARKS.md."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `make bench` ({mode} mode) on {when}, in {elapsed:.0f} s. Every",
        "comparison was measured in the same run, with the variants interleaved round by round;",
        "times are medians and p99 over all rounds. Re-run `make bench` to measure your machine.",
        "",
        *[f"- {line}" for line in about],
        "",
        "| # | measurement | result | compared with, in the same run | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        report = row.report
        met = "yes" if report.met else "**no**"
        lines.append(
            f"| {row.number} | {row.measurement} | {report.result} | {report.compared} | "
            f"{report.target} | {met} |"
        )
    lines.append("")
    for row in rows:
        lines += ["", f"## {row.number}. {row.measurement}", ""]
        lines += [f"- {note}" for note in row.report.notes]
    return "\n".join(lines) + "\n"
