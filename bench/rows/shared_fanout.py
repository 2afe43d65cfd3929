"""Row 19: publish to enforced by worker processes that share one host writer, against as many
sidecars of their own (row 12's), in the same run.

Row 12's fan-out, with one consumer per host: a host writer (``RevocationSidecar`` with
``shared_path``, in a process of its own) keeps the state in a file in ``/dev/shm``, and the
largest count of ``fanout`` worker processes (32 in full mode) each read it through
``SharedRevocations``. :func:`events_of` logouts are published one at a time from this
process (acknowledged), each after every worker has reported the one before. Two times per
event, both from the moment ``publish`` was called:

* to the table: the host writer stamps its clock once the polled batch is in the table
  (:func:`~bench.rows.shared_visibility.stamping_writer`). From then on every worker's next
  check refuses the token (row 20 measures the visibility to other processes): this is
  enforced by all, and it is the same measure as a sidecar's (its state holding the jti);
* to every polling worker: each worker checks the next jti every :data:`POLL_SECONDS` and
  stamps the moment its check first refused it; the latest stamp. This adds up to one polling
  interval and the wait of 32 processes for a core on a 2-core machine: a confirmation that
  every worker does refuse it, not a property of the table.

Then, in the same run, row 12's measure of as many sidecars, each a process of its own
(:func:`bench.rows.fanout.fleet`), with the same number of logouts. The two are not
interleaved event by event: 32 sidecars and 32 workers at once would measure each other's
CPU. Events are capped at :data:`MAX_EVENTS` so that the group takes a few minutes on 2
cores (32 sidecars take about 20 events/s here).
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fixtures import Bench
from bench.harness import Report, Stats, load_average, ms
from jwt_revocation.producer import RevocationPublisher

from . import fanout
from .shared_visibility import logout, stamp_of, stamping_writer, tear_down

POLL_SECONDS = 0.01
"""How often a worker checks the jti it waits for: 100 checks a second each. At 0.5 ms, 32
workers woke 64,000 times a second on 2 cores: the load average reached 38 and the broker
and the publisher starved (publishes timed out); at 5 ms the load average went from 28 to 46
while they polled. The polled figure is a confirmation: the table is the measure."""
GAP_SECONDS = 0.002
"""Pause between an event enforced everywhere and the next publish, as rows 4 and 12 do."""
MAX_EVENTS = 500
"""Logouts published to each side at most: 500 to 32 sidecars take about 25 s, to 32
workers about 10 s, and each fleet about 30 s to start on 2 cores."""


@dataclass(frozen=True)
class Figures:
    workers: int
    table: Stats
    """Publish to the host writer's table holding the jti, seconds: from then on every
    worker's next check refuses it (row 20: visible to other processes at once)."""
    all: Stats
    """Publish to enforced by every polling worker, seconds."""
    first: float
    """Median publish to enforced by the first worker, seconds."""
    publish: float
    """Median ``publish`` itself (until ``acks=all``), seconds."""
    after_ack: Stats
    """From ``publish`` returning to the writer's table, seconds: row 4's measure, which
    leaves out the broker's acknowledgement (the part a loaded machine slows most)."""
    sidecars: fanout.Fleet
    """Row 12's measure of as many sidecars, same run, same number of events."""
    loads: tuple[float, float, float]
    """The 1-minute load average before the workers, between, after the sidecars."""


def events_of(bench: Bench) -> int:
    """Logouts published to each side."""
    return min(bench.sizes.fanout_events, MAX_EVENTS)


def _worker(path: str, run: str, events: int, number: int, out: Any) -> None:
    from jwt_revocation.consumer import SharedRevocations

    shared = SharedRevocations(path)
    out.put((number, -1, 0.0))  # open and ready
    for event in range(events):
        jti = f"fanout-{run}-{event}"
        while True:
            shared.ensure_usable()
            if shared.check(jti, None, None) is not None:
                out.put((number, event, time.time()))
                break
            time.sleep(POLL_SECONDS)


def measure(bench: Bench) -> Figures:
    """One writer and the largest fan-out count of workers, then as many sidecars."""
    workers = max(bench.sizes.fanout)
    events = events_of(bench)
    loads = [load_average()]
    shared = _shared(bench, workers, events)
    loads.append(load_average())
    # No broker CPU here (row 12 has it): a broker restarted by other work would end the run.
    sidecars = fanout.fleet(bench, workers, None, events)
    loads.append(load_average())
    return Figures(workers, *shared, sidecars=sidecars, loads=(loads[0], loads[1], loads[2]))


def _shared(bench: Bench, workers: int, events: int) -> tuple[Stats, Stats, float, float, Stats]:
    """Publish to the writer's table; to enforced by all of ``workers`` polling behind it; to
    the first; the publish itself."""
    topic = bench.topic("shared-fanout")
    path = Path(f"/dev/shm/bench-fanout-{bench.run}")  # noqa: S108 - tmpfs, as in production
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    ready = context.Event()
    out, written = context.Queue(), context.Queue()
    writer = context.Process(
        target=stamping_writer, args=(bench.bootstrap, topic, str(path), ready, stop, written)
    )
    writer.start()
    children: list[Any] = []
    try:
        if not ready.wait(120):
            raise RuntimeError("the host writer did not catch up")
        for number in range(workers):
            child = context.Process(
                target=_worker, args=(str(path), bench.run, events, number, out)
            )
            child.start()
            children.append(child)
        for _ in range(workers):
            out.get(timeout=120)
        all_delays: list[float] = []
        firsts: list[float] = []
        publishes: list[float] = []
        tables: list[float] = []
        with ExitStack() as stack:
            publisher = stack.enter_context(
                RevocationPublisher(bench.bootstrap, topic, issuer="bench")
            )
            # A first event that nobody watches: the producer's first send fetches metadata
            # (row 12 does the same).
            publisher.logout(jti="warm-up", user_id="warm-up", expires_at=time.time() + 600)
            time.sleep(fanout.SETTLE_SECONDS)
            for event in range(events):
                sent, sent_ns = time.time(), time.perf_counter_ns()
                logout(publisher, f"fanout-{bench.run}-{event}")
                publishes.append(time.time() - sent)
                stamps = [out.get(timeout=60)[2] for _ in range(workers)]
                at = stamp_of(written, f"fanout-{bench.run}-{event}")
                tables.append((at - sent_ns) / 1e9)
                all_delays.append(max(stamps) - sent)
                firsts.append(min(stamps) - sent)
                time.sleep(GAP_SECONDS)
    finally:
        tear_down(stop, writer, children, path)
    return (
        Stats.of(tables),
        Stats.of(all_delays),
        statistics.median(firsts),
        statistics.median(publishes),
        Stats.of([table - publish for table, publish in zip(tables, publishes, strict=True)]),
    )


def report(figures: Figures) -> list[Report]:
    """Row 19."""
    table, polled, fleet = figures.table, figures.all, figures.sidecars
    loads = ", ".join(f"{load:.1f}" for load in figures.loads)
    return [
        Report(
            result=(
                f"{figures.workers} workers behind one writer: p50 {ms(table.median)}, p99 "
                f"{ms(table.p99)} over {table.count:,} events (in the table: every worker's "
                f"next check refuses); polled by all p50 {ms(polled.median)}, p99 "
                f"{ms(polled.p99)}"
            ),
            compared=(
                f"{fleet.sidecars} sidecars (row 12's measure): p50 {ms(fleet.all.median)}, "
                f"p99 {ms(fleet.all.p99)}; after the broker's ack: writer p99 "
                f"{ms(figures.after_ack.p99)}, sidecars p99 {ms(fleet.after_ack.p99)}"
            ),
            target="p99 < 25 ms",
            met=table.p99 < 0.025,
            notes=[
                f"{figures.workers} worker processes behind one host writer: publish to the "
                f"writer's table (enforced for every worker's next check) p50 "
                f"{ms(table.median)}, p99 {ms(table.p99)}; publish itself p50 "
                f"{ms(figures.publish)}; from publish returning to the table (row 4's "
                f"measure) p50 {ms(figures.after_ack.median)}, p99 {ms(figures.after_ack.p99)}",
                f"the same events as seen by the {figures.workers} workers, each checking the "
                f"awaited jti every {POLL_SECONDS * 1000:g} ms: by all p50 {ms(polled.median)}, "
                f"p99 {ms(polled.p99)}; by the first p50 {ms(figures.first)} (up to one "
                "polling interval, and each worker's wait for one of the 2 cores)",
                f"{fleet.sidecars} sidecars, one per worker, same run, {fleet.all.count:,} "
                f"events: publish to enforced by all (each sidecar's state holding the jti) "
                f"p50 {ms(fleet.all.median)}, p99 {ms(fleet.all.p99)}, max "
                f"{ms(fleet.slowest)}; by the first p50 {ms(fleet.first.median)}; publish "
                f"itself p50 {ms(fleet.publish.median)}; from publish returning (row 4's "
                f"measure) p50 {ms(fleet.after_ack.median)}, p99 {ms(fleet.after_ack.p99)}",
                f"against the target: p99 {(table.p99 - 0.025) * 1e3:+.2f} ms from publish "
                f"called; from the broker's acknowledgement the writer's p99 is "
                f"{ms(figures.after_ack.p99)} (the sidecars' {ms(fleet.after_ack.p99)}): the "
                "rest is the acknowledged write itself, on a broker that shares the 2 cores "
                "with the load below",
                "one consumer reads the topic for the workers, where the sidecars are "
                f"{fleet.sidecars} consumers; the workers first, then the sidecars (not "
                "interleaved: 32 of each at once would measure each other's CPU); the broker, "
                "the publisher, the writer and every worker or sidecar share the machine's 2 "
                f"cores with other work; the 1-minute load average was {loads} (before, "
                "between, after)",
            ],
        )
    ]
