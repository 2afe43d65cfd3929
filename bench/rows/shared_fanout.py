"""Row 19: publish to enforced by worker processes that share one host writer.

Row 12's fan-out, with one consumer per host: a host writer (``RevocationSidecar`` with
``shared_path``, in a process of its own) keeps the state in a file in ``/dev/shm``, and the
largest count of ``fanout`` worker processes (32 in full mode) each read it through
``SharedRevocations``. ``fanout_events`` logouts are published one at a time from this
process (acknowledged), each after every worker has reported the one before; each worker
checks the next jti every :data:`POLL_SECONDS` and stamps the moment its check first refused
it. Publish to enforced by all is the latest stamp less the time ``publish`` was called (one
machine, one wall clock). The workers poll because a worker has no other way to learn of a
revocation: the figure includes up to one polling interval.
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
from bench.harness import Report, Stats, ms
from jwt_revocation.producer import RevocationPublisher

POLL_SECONDS = 0.005
"""How often a worker checks the jti it waits for: 200 checks a second each. At 0.5 ms, 32
workers woke 64,000 times a second on 2 cores: the load average reached 38 and the broker
and the publisher starved (publishes timed out)."""
GAP_SECONDS = 0.002
"""Pause between an event enforced everywhere and the next publish, as rows 4 and 12 do."""


@dataclass(frozen=True)
class Figures:
    workers: int
    all: Stats
    """Publish to enforced by every worker, seconds."""
    first: float
    """Median publish to enforced by the first worker, seconds."""


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
    """One writer, the largest fan-out count of workers, ``fanout_events`` logouts."""
    workers = max(bench.sizes.fanout)
    events = bench.sizes.fanout_events
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
        with ExitStack() as stack:
            publisher = stack.enter_context(
                RevocationPublisher(bench.bootstrap, topic, issuer="bench")
            )
            for event in range(events):
                sent = time.time()
                publisher.logout(
                    jti=f"fanout-{bench.run}-{event}", user_id="u", expires_at=sent + 1800
                )
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
    return Figures(workers, Stats.of(all_delays), statistics.median(firsts))


def report(figures: Figures) -> list[Report]:
    """Row 19."""
    stats = figures.all
    return [
        Report(
            result=(
                f"{figures.workers} workers: p50 {ms(stats.median)}, p99 {ms(stats.p99)} over "
                f"{stats.count:,} events"
            ),
            compared="row 12: 32 sidecars, one per worker, p50 41.33 ms, p99 131.04 ms "
            "(another run)",
            target="p99 < 25 ms",
            met=stats.p99 < 0.025,
            notes=[
                f"{figures.workers} worker processes behind one host writer: publish to "
                f"enforced by all p50 {ms(stats.median)}, p99 {ms(stats.p99)}; by the first "
                f"p50 {ms(figures.first)}",
                f"each worker checks the awaited jti every {POLL_SECONDS * 1000:g} ms, so a "
                "figure includes up to one polling interval; one consumer reads the topic, "
                "where row 12 had one per worker",
            ],
        )
    ]
