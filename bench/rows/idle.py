"""Row 18: a quiet sidecar's requests to the broker and CPU, today's defaults against the
ones before (``fetch_max_wait_ms`` 100, an end-offsets request every second, the loop woken
every 0.2 s) and against a loop that waits up to 2 s between wakes (``poll_timeout`` 2 s:
less CPU, but :meth:`RevocationSidecar.stop` then waits up to 2 s for the consumer thread).

Three sidecars on a fresh quiet topic, each in a process of its own (``spawn``), caught up;
over twice ``quiet_seconds`` (after a settling second) each one's data segments sent to the
broker (``ss -ti``, as row 12 counts requests) and CPU time are read; the median of
``rounds`` intervals. CPU time is the sum of its threads' time on a CPU in
``/proc/PID/task/*/schedstat`` (nanoseconds): ``/proc/PID/stat`` counts 10 ms ticks, 4 of
them in a 20 s interval at 0.2%.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

from bench.fixtures import Bench
from bench.harness import Report
from bench.rows.fanout import _traffic

BEFORE: dict[str, Any] = {
    "consumer_config": {"fetch_max_wait_ms": 100},
    "contact_interval": 1.0,
    "poll_timeout": 0.2,
}
"""The settings a sidecar had before: a fetch every 100 ms, contact every second, the loop
woken every 0.2 s."""

LONG_POLL = {"poll_timeout": 2.0}
"""Today's defaults but the loop waiting up to 2 s between wakes."""


@dataclass(frozen=True)
class Quiet:
    requests: float
    """Requests per second to the broker."""
    cpu: float
    """Share of a core."""


@dataclass(frozen=True)
class Figures:
    now: Quiet
    before: Quiet
    seconds: float
    long_poll: Quiet
    """Today's defaults with the loop waiting up to 2 s."""
    load: tuple[float, float]
    """The 1-minute load average before the first interval and after the last."""


def _cpu_seconds(pid: int) -> float:
    """CPU seconds a process's threads have used so far, from their ``schedstat``."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        path = f"/proc/{pid}/task/{task}/schedstat"
        # A thread that ended meanwhile counts no more.
        with contextlib.suppress(FileNotFoundError), open(path, encoding="ascii") as stat:
            total += int(stat.read().split()[0])
    return total / 1e9


def _sidecar(bootstrap: str, topic: str, options: dict[str, Any], ready: Any, stop: Any) -> None:
    from jwt_revocation.consumer import RevocationSidecar

    with RevocationSidecar(bootstrap, topic, max_token_lifetime=3600, **options):
        ready.set()
        stop.wait()


def measure(bench: Bench) -> Figures:
    topic = bench.topic("idle")
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    children = {}
    for name, options in (("now", {}), ("before", BEFORE), ("long_poll", LONG_POLL)):
        ready = context.Event()
        child = context.Process(
            target=_sidecar, args=(bench.bootstrap, topic, options, ready, stop)
        )
        child.start()
        if not ready.wait(120):
            raise RuntimeError(f"the {name} sidecar did not catch up")
        children[name] = child
    port = int(bench.bootstrap.rsplit(":", 1)[1])
    pids = {name: child.pid for name, child in children.items() if child.pid is not None}
    seconds = max(bench.sizes.quiet_seconds * 2, 2.0)
    samples: dict[str, list[Quiet]] = {name: [] for name in pids}
    try:
        time.sleep(1.0)
        load_before = os.getloadavg()[0]
        for _ in range(bench.sizes.rounds):
            cpu = {name: _cpu_seconds(pid) for name, pid in pids.items()}
            sent = _traffic(list(pids.values()), port) or {}
            started = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - started
            after = _traffic(list(pids.values()), port) or {}
            for name, pid in pids.items():
                requests = (after.get(pid, (0, 0))[0] - sent.get(pid, (0, 0))[0]) / elapsed
                used = (_cpu_seconds(pid) - cpu[name]) / elapsed
                samples[name].append(Quiet(requests, used))
        load = (load_before, os.getloadavg()[0])
    finally:
        stop.set()
        for child in children.values():
            child.join(30)
    median = {
        name: Quiet(
            statistics.median(q.requests for q in runs), statistics.median(q.cpu for q in runs)
        )
        for name, runs in samples.items()
    }
    return Figures(median["now"], median["before"], seconds, median["long_poll"], load)


def report(figures: Figures) -> list[Report]:
    """Row 18."""
    now, before, long_poll = figures.now, figures.before, figures.long_poll
    return [
        Report(
            result=f"{now.requests:.2f} requests/s, {now.cpu * 100:.2f}% of a core",
            compared=(
                f"poll_timeout 2 s: {long_poll.requests:.2f} requests/s, "
                f"{long_poll.cpu * 100:.2f}% of a core; before (fetch_max_wait_ms "
                f"100, contact every 1 s, poll 0.2 s): {before.requests:.2f} requests/s, "
                f"{before.cpu * 100:.2f}% of a core"
            ),
            target="≤ 1 request/s and ≤ 0.3% of a core",
            met=now.requests <= 1 and now.cpu <= 0.003,
            notes=[
                f"a quiet sidecar with today's defaults: {now.requests:.2f} requests/s to the "
                f"broker, {now.cpu * 100:.2f}% of a core; with poll_timeout 2 s "
                f"{long_poll.requests:.2f} requests/s, {long_poll.cpu * 100:.2f}% "
                f"({long_poll.cpu / now.cpu if now.cpu else 0:.2f}x); with the former settings "
                f"{before.requests:.2f} requests/s, {before.cpu * 100:.2f}% of a core",
                "now: the broker holds a quiet fetch up to 2 s (fetch_max_wait_ms 2000; it "
                "answers as soon as a record arrives) and the sidecar asks for end offsets "
                "every max_staleness / 3 (10 s at the default 30 s); its loop waits for "
                "records up to 0.5 s (poll_timeout), less when contact, expiry or a "
                "snapshot is due, so staleness is still detected within max_staleness; "
                "poll_timeout 2 s halves the CPU again but makes stop() wait up to 2 s for "
                "the consumer thread (kafka-python cannot interrupt a poll), so it is not "
                "the default",
                f"each figure the median of intervals of {figures.seconds:.0f} s, the three "
                "sidecars side by side; requests are the data segments each sidecar sent to "
                "the broker (`ss -ti`); CPU the threads' time on a CPU (`schedstat`); the "
                f"1-minute load average was {figures.load[0]:.1f} before the first interval "
                f"and {figures.load[1]:.1f} after the last",
                "CPU read from `/proc/PID/stat`'s 10 ms ticks, as this row did before, came "
                "out higher: 0.40% for the same 0.5 s loop in an earlier run",
                "what is left of the CPU is kafka-python's: each poll hands its fetch and "
                "its wait to kafka-python's IO thread and back (a few thread wake-ups), and "
                "the IO thread reads the broker's empty answer every 2 s",
            ],
        )
    ]
