"""Row 19: publish to enforced by worker processes that share one host writer, against as many
sidecars of their own (row 12's), in the same run.

Row 12's fan-out, with one consumer per host: a host writer (``RevocationSidecar`` with
``shared_path``, in a process of its own) keeps the state in a file in ``/dev/shm``, and the
largest count of ``fanout`` worker processes (32 in full mode) each read it through
``SharedRevocations``. :func:`events_of` logouts are published one at a time from this
process (acknowledged), each after every worker has reported the one before; each worker
checks the next jti every :data:`POLL_SECONDS` and stamps the moment its check first refused
it. Publish to enforced by all is the latest stamp less the time ``publish`` was called (one
machine, one wall clock). The workers poll because a worker has no other way to learn of a
revocation: the figure includes up to one polling interval.

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

POLL_SECONDS = 0.005
"""How often a worker checks the jti it waits for: 200 checks a second each. At 0.5 ms, 32
workers woke 64,000 times a second on 2 cores: the load average reached 38 and the broker
and the publisher starved (publishes timed out)."""
GAP_SECONDS = 0.002
"""Pause between an event enforced everywhere and the next publish, as rows 4 and 12 do."""
MAX_EVENTS = 500
"""Logouts published to each side at most: 500 to 32 sidecars take about 25 s, to 32
workers about 10 s, and each fleet about 30 s to start on 2 cores."""


@dataclass(frozen=True)
class Figures:
    workers: int
    all: Stats
    """Publish to enforced by every worker, seconds."""
    first: float
    """Median publish to enforced by the first worker, seconds."""
    publish: float
    """Median ``publish`` itself (until ``acks=all``), seconds."""
    sidecars: fanout.Fleet
    """Row 12's measure of as many sidecars, same run, same number of events."""
    loads: tuple[float, float, float]
    """The 1-minute load average before the workers, between, after the sidecars."""


def events_of(bench: Bench) -> int:
    """Logouts published to each side."""
    return min(bench.sizes.fanout_events, MAX_EVENTS)


def _writer(bootstrap: str, topic: str, path: str, ready: Any, stop: Any) -> None:
    from jwt_revocation.consumer import RevocationSidecar

    with RevocationSidecar(
        bootstrap, topic, max_token_lifetime=3600, max_entries=100_000, shared_path=path
    ):
        ready.set()
        stop.wait()


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
    sidecars = fanout.fleet(bench, workers, bench.broker_pid(), events)
    loads.append(load_average())
    return Figures(workers, *shared, sidecars=sidecars, loads=(loads[0], loads[1], loads[2]))


def _shared(bench: Bench, workers: int, events: int) -> tuple[Stats, float, float]:
    """Publish to enforced by all of ``workers`` behind one host writer; to the first; the
    publish itself."""
    topic = bench.topic("shared-fanout")
    path = Path(f"/dev/shm/bench-fanout-{bench.run}")  # noqa: S108 - tmpfs, as in production
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    ready = context.Event()
    out = context.Queue()
    writer = context.Process(target=_writer, args=(bench.bootstrap, topic, str(path), ready, stop))
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
        with ExitStack() as stack:
            publisher = stack.enter_context(
                RevocationPublisher(bench.bootstrap, topic, issuer="bench")
            )
            # A first event that nobody watches: the producer's first send fetches metadata
            # (row 12 does the same).
            publisher.logout(jti="warm-up", user_id="warm-up", expires_at=time.time() + 600)
            time.sleep(fanout.SETTLE_SECONDS)
            for event in range(events):
                sent = time.time()
                publisher.logout(
                    jti=f"fanout-{bench.run}-{event}", user_id="u", expires_at=sent + 1800
                )
                publishes.append(time.time() - sent)
                stamps = [out.get(timeout=60)[2] for _ in range(workers)]
                all_delays.append(max(stamps) - sent)
                firsts.append(min(stamps) - sent)
                time.sleep(GAP_SECONDS)
    finally:
        stop.set()
        for child in children:
            child.join(30)
            if child.is_alive():
                child.kill()
        writer.join(30)
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".lock").unlink(missing_ok=True)
    return Stats.of(all_delays), statistics.median(firsts), statistics.median(publishes)


def report(figures: Figures) -> list[Report]:
    """Row 19."""
    stats, fleet = figures.all, figures.sidecars
    loads = ", ".join(f"{load:.1f}" for load in figures.loads)
    return [
        Report(
            result=(
                f"{figures.workers} workers behind one writer: p50 {ms(stats.median)}, p99 "
                f"{ms(stats.p99)} over {stats.count:,} events"
            ),
            compared=(
                f"{fleet.sidecars} sidecars (row 12's measure): p50 {ms(fleet.all.median)}, "
                f"p99 {ms(fleet.all.p99)}: the shared state's p99 is "
                f"{fleet.all.p99 / stats.p99:.1f}x lower"
            ),
            target="p99 < 25 ms",
            met=stats.p99 < 0.025,
            notes=[
                f"{figures.workers} worker processes behind one host writer: publish to "
                f"enforced by all p50 {ms(stats.median)}, p99 {ms(stats.p99)}; by the first "
                f"p50 {ms(figures.first)}; publish itself p50 {ms(figures.publish)}",
                f"{fleet.sidecars} sidecars, one per worker, same run, {fleet.all.count:,} "
                f"events: publish to enforced by all p50 {ms(fleet.all.median)}, p99 "
                f"{ms(fleet.all.p99)}, max {ms(fleet.slowest)}; by the first p50 "
                f"{ms(fleet.first.median)}; publish itself p50 {ms(fleet.publish.median)}",
                f"each worker checks the awaited jti every {POLL_SECONDS * 1000:g} ms, so a "
                "figure includes up to one polling interval (a worker learns of a revocation "
                "at its next check; a sidecar's time is its state holding the jti); one "
                f"consumer reads the topic, where the sidecars are {fleet.sidecars} consumers",
                "the workers first, then the sidecars (not interleaved: 32 of each at once "
                "would measure each other's CPU); the broker, the publisher, the writer and "
                "every worker or sidecar share the machine's 2 cores with other work; the "
                f"1-minute load average was {loads} (before, between, after)",
            ],
        )
    ]
