"""Row 12: one topic read by 1, 8 and 32 sidecars, each a process of its own.

Every service replica runs a sidecar that reads every event, so the fleet grows by sidecars.
For each count in ``fanout``, in turn, on a fresh topic (6 partitions):

1. start that many ``python -m bench.service watch`` processes and wait until all are ready;
   hand each the tokens about to be revoked (each must be accepted first);
2. a quiet interval of ``quiet_seconds``: the broker's CPU and every sidecar's CPU over it, then
   every sidecar's RSS (``VmRSS``, an empty state: the cost of a sidecar before its entries);
3. publish ``fanout_events`` logouts one at a time from this process (acknowledged), each after
   every sidecar has reported the one before: publish to enforced by all is the latest of the
   sidecars' reported times less the time ``publish`` was called (each child stamps the moment
   its state held the jti, see :mod:`bench.service`; one machine, one wall clock). The broker's
   and each sidecar's CPU over the publishing, less their quiet rate, give the CPU one event
   costs each.

The broker's CPU is ``utime + stime`` of the broker ``scripts/services.sh`` started (its pid is
in ``.services/kafka.pid``), read from ``/proc``: every thread of the JVM. Its share of a core
is the median of :data:`WINDOWS` windows of each interval, as other clients of the same broker
(tests run meanwhile) come in bursts. A quiet interval with no sidecar at all, before the first
count and after the last, gives the broker's own idle load, the baseline each count is compared
with; the two tell whether the broker was otherwise busy. A sidecar's CPU is its whole
interval's.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import statistics
import subprocess
import time
import uuid
from contextlib import ExitStack, closing
from dataclasses import dataclass

from bench.fixtures import Bench, token
from bench.harness import Report, Stats, load_average, ms
from bench.service import ServiceProcess, cpu_seconds
from jwt_revocation.producer import RevocationPublisher

SETTLE_SECONDS = 1.0
"""Wait after the sidecars are ready, before the quiet interval: their first metadata and
end-offset requests happen at start."""
WINDOWS = 5
"""Windows per quiet interval and per publishing. The broker's share of a core is the median
window's: a burst from another client of the shared broker (a test run meanwhile) moves one
window, not the figure."""
GAP_SECONDS = 0.002
"""Pause between an event enforced everywhere and the next publish, as row 4 does."""


@dataclass(frozen=True)
class Fleet:
    """What one count of sidecars measured."""

    sidecars: int
    all: Stats
    """Seconds from ``publish`` called to enforced by every sidecar."""
    first: Stats
    """Seconds from ``publish`` called to enforced by the first sidecar."""
    after_ack: Stats
    """Seconds from ``publish`` returning to enforced by every sidecar: row 4's measure."""
    publish: Stats
    """``publish`` itself, until ``acks=all``."""
    slowest: float
    broker_quiet: float | None
    """Share of a core the broker used while the sidecars were quiet; None without its pid."""
    broker_busy: float | None
    """Share of a core the broker used during the publishing."""
    busy_seconds: float
    """Length of the publishing."""
    sidecar_quiet: list[float]
    """Share of a core each sidecar used while quiet."""
    sidecar_busy: list[float]
    """Share of a core each sidecar used during the publishing."""
    rss: list[int]
    """Each sidecar's RSS in bytes, with an empty state."""
    quiet_traffic: Traffic | None
    """Per sidecar per second, while quiet; None without ``ss``."""
    event_traffic: Traffic | None
    """Per sidecar per event, beyond the quiet rate."""


@dataclass(frozen=True)
class Traffic:
    """Between a sidecar and the broker: requests sent, bytes received (medians of sidecars)."""

    requests: float
    """TCP segments with data sent to the broker: about one per request."""
    received: float
    """Bytes the broker sent."""


@dataclass(frozen=True)
class Figures:
    """What the fan-out group measured."""

    fleets: list[Fleet]
    broker_alone: list[float]
    """Share of a core the broker used with no sidecar, before the first count and after the
    last; empty without its pid."""
    events: int
    quiet_seconds: float
    load: tuple[float, float]
    """The machine's 1-minute load average before the first count and after the last."""


def measure(bench: Bench) -> Figures:
    """Run each count of sidecars in turn, between two quiet intervals with none."""
    pid = bench.broker_pid()
    quiet = bench.sizes.quiet_seconds
    load = load_average()
    alone = [_quiet([pid], quiet).median(0)] if pid else []
    fleets = [fleet(bench, count, pid) for count in bench.sizes.fanout]
    if pid:
        alone.append(_quiet([pid], quiet).median(0))
    return Figures(fleets, alone, bench.sizes.fanout_events, quiet, (load, load_average()))


class _Meter:
    """CPU seconds of some processes read at marks: each one's share of a core, by window."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.marks: list[tuple[float, list[float]]] = []
        self.mark()

    def mark(self) -> None:
        self.marks.append((time.perf_counter(), [cpu_seconds(pid) for pid in self.pids]))

    @property
    def seconds(self) -> float:
        return self.marks[-1][0] - self.marks[0][0]

    def median(self, index: int) -> float:
        """The median window's share of a core of process ``index``."""
        return statistics.median(
            (after[index] - before[index]) / (t1 - t0)
            for (t0, before), (t1, after) in itertools.pairwise(self.marks)
        )

    def overall(self, index: int) -> float:
        """Process ``index``'s share of a core from the first mark to the last."""
        return (self.marks[-1][1][index] - self.marks[0][1][index]) / self.seconds


def _quiet(pids: list[int], seconds: float) -> _Meter:
    """The processes' CPU over ``seconds`` of doing nothing here, in :data:`WINDOWS` windows."""
    meter = _Meter(pids)
    for _ in range(WINDOWS):
        time.sleep(seconds / WINDOWS)
        meter.mark()
    return meter


def fleet(bench: Bench, count: int, broker: int | None, events: int | None = None) -> Fleet:
    """Start ``count`` sidecar processes on a fresh topic; measure them quiet, then busy with
    ``events`` logouts (``fanout_events`` by default)."""
    sizes = bench.sizes
    topic = bench.topic(f"fanout-{count}")
    now = time.time()
    revoked = [(str(uuid.uuid4()), f"user-{i}") for i in range(events or sizes.fanout_events)]
    tokens = [token(jti, user, now=now, ttl=1800) for jti, user in revoked]
    with ExitStack() as stack:
        publisher = stack.enter_context(RevocationPublisher(bench.bootstrap, topic, issuer="bench"))
        children = [
            stack.enter_context(
                closing(ServiceProcess("watch", bench.bootstrap, topic, f"fanout-{i}"))
            )
            for i in range(count)
        ]
        stack.callback(_hang_up_all, children)
        for child in children:
            child.wait_ready(600)
        for child in children:
            child.send([*tokens, ""])
        for child in children:
            armed = child.line(time.monotonic() + 60)
            if armed != f"armed {len(tokens)}":
                raise RuntimeError(f"{child.name} did not arm every token: {armed}")
        # A first event that nobody watches: the producer's first send fetches metadata.
        publisher.logout(jti="warm-up", user_id="warm-up", expires_at=time.time() + 600)
        time.sleep(SETTLE_SECONDS)
        # The broker, when known, is process 0 of each meter; the sidecars follow.
        pids = ([broker] if broker else []) + [child.pid for child in children]
        first = 1 if broker else 0
        sidecars = [child.pid for child in children]
        port = int(bench.bootstrap.rsplit(":", 1)[1])
        before = _traffic(sidecars, port)
        quiet = _quiet(pids, sizes.quiet_seconds)
        during_quiet = _traffic(sidecars, port)
        rss = [child.rss() for child in children]
        busy = _Meter(pids)
        delays = _publish(publisher, revoked, children, busy)
        during_busy = _traffic(sidecars, port)
    all_, to_first, after_ack, publish = delays
    idle = event = None
    if before and during_quiet and during_busy:
        idle = _per(before, during_quiet, quiet.seconds)
        event = _per(during_quiet, during_busy, len(revoked), idle, busy.seconds)
    return Fleet(
        sidecars=count,
        all=Stats.of(all_),
        first=Stats.of(to_first),
        after_ack=Stats.of(after_ack),
        publish=Stats.of(publish),
        slowest=max(all_),
        broker_quiet=quiet.median(0) if broker else None,
        broker_busy=busy.median(0) if broker else None,
        busy_seconds=busy.seconds,
        sidecar_quiet=[quiet.overall(i) for i in range(first, len(pids))],
        sidecar_busy=[busy.overall(i) for i in range(first, len(pids))],
        rss=rss,
        quiet_traffic=idle,
        event_traffic=event,
    )


def _traffic(pids: list[int], port: int) -> dict[int, tuple[int, int]] | None:
    """Each process's data segments sent to and bytes received from ``port`` so far (``ss``).

    Counted over the process's established connections to the broker, as the kernel's TCP
    statistics (``ss -ti``: ``data_segs_out``, ``bytes_received``) have them: a measure of the
    broker's work that other clients of the shared broker do not touch. None without iproute2's
    ``ss``.
    """
    if shutil.which("ss") is None:
        return None
    command = ["ss", "-tinpH", "state", "established", "dport", "=", f":{port}"]
    done = subprocess.run(  # noqa: S603 - iproute2's ss, fixed arguments
        command, capture_output=True, text=True, check=True
    )
    totals = dict.fromkeys(pids, (0, 0))
    owner: int | None = None
    for line in done.stdout.splitlines():
        if not line[:1].isspace():
            found = re.search(r"pid=(\d+),", line)
            owner = int(found[1]) if found else None
        elif owner in totals:
            segments = re.search(r"data_segs_out:(\d+)", line)
            received = re.search(r"bytes_received:(\d+)", line)
            sent, got = totals[owner]
            totals[owner] = (
                sent + (int(segments[1]) if segments else 0),
                got + (int(received[1]) if received else 0),
            )
    return totals


def _per(
    before: dict[int, tuple[int, int]],
    after: dict[int, tuple[int, int]],
    divisor: float,
    idle: Traffic | None = None,
    seconds: float = 0.0,
) -> Traffic:
    """The median sidecar's traffic between two readings, over ``divisor``; with ``idle`` (per
    second), less what the sidecar sends and receives anyway over those ``seconds``."""
    off = idle or Traffic(0.0, 0.0)
    requests = [
        (after[pid][0] - before[pid][0] - off.requests * seconds) / divisor for pid in before
    ]
    received = [
        (after[pid][1] - before[pid][1] - off.received * seconds) / divisor for pid in before
    ]
    return Traffic(max(0.0, statistics.median(requests)), max(0.0, statistics.median(received)))


def _hang_up_all(children: list[ServiceProcess]) -> None:
    """Tell every child to stop at once, so they stop side by side rather than in turn."""
    for child in children:
        child.hang_up()


def _publish(
    publisher: RevocationPublisher,
    revoked: list[tuple[str, str]],
    children: list[ServiceProcess],
    meter: _Meter,
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Publish each logout and wait for every child's time; the four samples of seconds.

    ``meter`` is marked :data:`WINDOWS` times on the way, the last time after the last event.
    """
    every = max(1, len(revoked) // WINDOWS)
    to_all: list[float] = []
    to_first: list[float] = []
    after_ack: list[float] = []
    publish: list[float] = []
    for jti, user in revoked:
        sent = time.time()
        publisher.logout(jti=jti, user_id=user, expires_at=sent + 1800)
        returned = time.time()
        deadline = time.monotonic() + 30
        times = []
        for child in children:
            seen, _, at = child.line(deadline).partition(" ")
            if seen != jti or at == "accepted":
                raise RuntimeError(f"{child.name} reported {seen} {at}, waiting for {jti}")
            times.append(float(at))
        to_all.append(max(times) - sent)
        to_first.append(min(times) - sent)
        after_ack.append(max(times) - returned)
        publish.append(returned - sent)
        time.sleep(GAP_SECONDS)
        if len(publish) % every == 0 or len(publish) == len(revoked):
            meter.mark()
    return to_all, to_first, after_ack, publish


def _per_event_us(busy: float, quiet: float, seconds: float, events: int) -> float:
    """Microseconds of CPU one event costs, from the busy and quiet shares of a core."""
    return max(0.0, busy - quiet) * seconds / events * 1e6


def _mb(values: list[int]) -> str:
    return f"{statistics.median(values) / 2**20:.1f} MB (max {max(values) / 2**20:.1f} MB)"


def _plural(count: int) -> str:
    return f"{count} sidecar" + ("s" if count > 1 else "")


def _broker_event_us(f: Fleet, events: int) -> float | None:
    """The broker's CPU per event, all sidecars together (the publish's own work included)."""
    if f.broker_quiet is None or f.broker_busy is None:
        return None
    return _per_event_us(f.broker_busy, f.broker_quiet, f.busy_seconds, events)


@dataclass(frozen=True)
class Slopes:
    """What one more sidecar costs the broker: least-squares lines over the counts."""

    quiet: float
    """Share of a core, while quiet (the broker alone counts as no sidecar)."""
    event_us: float
    """Microseconds of CPU per event."""


def slopes(figures: Figures) -> Slopes | None:
    """The broker's cost per sidecar, or None without its CPU or with one count only."""
    fleets, events = figures.fleets, figures.events
    per_event = [_broker_event_us(f, events) for f in fleets]
    quiet = [f.broker_quiet for f in fleets]
    if len(fleets) < 2 or not figures.broker_alone:
        return None
    counts = [float(f.sidecars) for f in fleets]
    shares = [share for share in quiet if share is not None]
    costs = [cost for cost in per_event if cost is not None]
    if len(shares) < len(fleets) or len(costs) < len(fleets):
        return None
    alone = statistics.mean(figures.broker_alone)
    return Slopes(
        quiet=statistics.linear_regression([0.0, *counts], [alone, *shares]).slope,
        event_us=statistics.linear_regression(counts, costs).slope,
    )


def _notes(f: Fleet, events: int) -> list[str]:
    n = _plural(f.sidecars)
    sidecar_us = [
        _per_event_us(busy, quiet, f.busy_seconds, events)
        for busy, quiet in zip(f.sidecar_busy, f.sidecar_quiet, strict=True)
    ]
    notes = [
        f"{n}: publish to enforced by all p50 {ms(f.all.median)}, p99 "
        f"{ms(f.all.p99)}, max {ms(f.slowest)}; by the first p50 {ms(f.first.median)}; from "
        f"publish returning (row 4's measure) p50 {ms(f.after_ack.median)}, p99 "
        f"{ms(f.after_ack.p99)}; publish itself p50 {ms(f.publish.median)}",
        f"{n}, quiet: each used a median {statistics.median(f.sidecar_quiet):.2%} of a core "
        f"(max {max(f.sidecar_quiet):.2%}); RSS {_mb(f.rss)} each with an empty state",
        f"{n}, publishing {events / f.busy_seconds:,.0f} events/s one at a time: each sidecar "
        f"spent a median {statistics.median(sidecar_us):,.0f} µs of CPU per event, "
        f"{f.sidecars * statistics.median(sidecar_us) / 1e3:.1f} ms for all of them together, "
        f"on the machine's {os.cpu_count()} cores",
    ]
    broker_us = _broker_event_us(f, events)
    if f.broker_quiet is not None and f.broker_busy is not None and broker_us is not None:
        notes.append(
            f"{n}, broker: {f.broker_quiet:.1%} of a core quiet, {f.broker_busy:.1%} while "
            f"publishing: {broker_us:,.0f} µs of CPU per event (its acknowledged write and "
            "every sidecar's fetch of it)"
        )
    if f.quiet_traffic is not None and f.event_traffic is not None:
        q, e = f.quiet_traffic, f.event_traffic
        notes.append(
            f"{n}, each sidecar's traffic with the broker: quiet {q.requests:.1f} requests/s "
            f"receiving {q.received:,.0f} B/s; per event {e.requests:.1f} requests more, "
            f"receiving {e.received:,.0f} B more"
        )
    return notes


def report(figures: Figures) -> list[Report]:
    """Row 12."""
    fleets, events = figures.fleets, figures.events
    notes = [line for f in fleets for line in _notes(f, events)]
    alone = statistics.mean(figures.broker_alone) if figures.broker_alone else None
    if alone is not None:
        notes.append(
            "the broker alone, no sidecar: "
            + " and ".join(f"{share:.1%}" for share in figures.broker_alone)
            + " of a core (before the first count, after the last)"
        )
    else:
        notes.append(
            "the broker's CPU was not measured: no local broker started by scripts/services.sh"
        )
    fit = slopes(figures)
    if fit is not None:
        counts = ", ".join(str(f.sidecars) for f in fleets)
        per_event = ", ".join(f"{_broker_event_us(f, events) or 0:,.0f}" for f in fleets)
        growth = (
            f"{fit.event_us:,.0f} µs more per sidecar"
            if fit.event_us > 0
            else "no growth with the number of sidecars"
        )
        notes.append(
            f"one more sidecar costs the broker {fit.quiet:.2%} of a core while quiet (a "
            f"least-squares line over {counts} sidecars, the broker alone counting as none); "
            f"its CPU per event was {per_event} µs at {counts} sidecars: {growth}"
        )
    notes.append(
        f"each sidecar is a process of its own (python -m bench.service) on a fresh topic of 6 "
        f"partitions; the publisher is this process; each time is that of a sidecar's state "
        f"holding the jti, reported once its verifier rejected the token; quiet intervals last "
        f"{figures.quiet_seconds:.0f} s; the broker, the publisher and every sidecar share the "
        f"machine's 2 cores; the 1-minute load average was {figures.load[0]:.1f} before the "
        f"first count and {figures.load[1]:.1f} after the last"
    )
    most = fleets[-1]
    others = "; ".join(
        f"{_plural(f.sidecars)}: p50 {ms(f.all.median)}, p99 {ms(f.all.p99)}" for f in fleets[:-1]
    )
    broker = ""
    if fit is not None and alone is not None:
        broker = f"; each sidecar adds {fit.quiet:.2%} of a core to the broker while quiet"
        others += f"; the broker alone {alone:.1%} of a core"
    return [
        Report(
            result=(
                f"{_plural(most.sidecars)}: p50 {ms(most.all.median)}, p99 {ms(most.all.p99)} "
                f"over {most.all.count:,} events; each sidecar "
                f"{statistics.median(most.sidecar_quiet):.2%} of a core quiet, RSS "
                f"{statistics.median(most.rss) / 2**20:.0f} MB{broker}"
            ),
            compared=others,
            target="row 4's p50 < 5 ms, p99 < 25 ms at every count (publish to enforced by all)",
            met=all(f.all.median < 0.005 and f.all.p99 < 0.025 for f in fleets),
            notes=notes,
        )
    ]
