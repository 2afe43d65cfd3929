"""Row 7: verify latency with two threads, quiet and while 1,000 revocations/s apply.

A third variant sends the same traffic to a topic this process does not read: the broker
and the publishing process work as hard, but the sidecar has nothing to apply. It tells the
cost of sharing two cores with them apart from the cost of applying the events.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as EventType

from bench.fixtures import Bench, logout, token_pool, verifier
from bench.harness import Report, Stats, flat, interleave, us
from jwt_revocation.consumer import RevocationSidecar, RevocationVerifier
from jwt_revocation.producer import RevocationPublisher

KINDS = ("quiet", "loaded", "elsewhere")
"""No traffic; 1,000 revocations/s to the sidecar's topic; the same to another topic."""


@dataclass(frozen=True)
class Figures:
    """What the load group measured."""

    seconds: float
    """Time spent verifying in each kind of round, over all rounds."""
    stats: dict[str, Stats]
    """Seconds per verify, by kind."""
    sidecar_cpu: dict[str, float]
    """Median share of a core the sidecar thread used, by kind."""
    applied_rates: list[float]
    """Revocations applied per second in each loaded round."""


def measure(bench: Bench) -> Figures:
    """Verify from two threads for ``load_seconds`` per round, in every kind of round."""
    sizes = bench.sizes
    topic, elsewhere = bench.topic("load"), bench.topic("load-elsewhere")
    sidecar = bench.sidecar(topic, "bench-load")
    check, pool = verifier(sidecar, cache_size=0), token_pool(time.time())
    try:
        with _traffic({"loaded": topic, "elsewhere": elsewhere}, bench.bootstrap) as switches:
            load = _Rounds(sidecar, check, pool, sizes.load_seconds, switches)
            samples = interleave(
                sizes.rounds, {kind: functools.partial(load.run, kind) for kind in KINDS}
            )
    finally:
        sidecar.stop()
    return Figures(
        seconds=sizes.load_seconds * sizes.rounds,
        stats={kind: Stats.of(flat(rounds)) for kind, rounds in samples.items()},
        sidecar_cpu={kind: statistics.median(cpu) for kind, cpu in load.sidecar_cpu.items()},
        applied_rates=load.applied_rates,
    )


@dataclass
class _Rounds:
    """One kind of round at a time: traffic on or off, two threads verifying."""

    sidecar: RevocationSidecar
    check: RevocationVerifier
    pool: list[str]
    seconds: float
    switches: dict[str, EventType]
    """Set one to publish to its kind's topic; ``quiet`` has none."""
    sidecar_cpu: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    applied_rates: list[float] = field(default_factory=list)

    def run(self, kind: str) -> list[float]:
        """Seconds per verify during one round of ``kind``."""
        switch = self.switches.get(kind)
        if switch is not None:
            switch.set()
            time.sleep(0.5)
        applied_before = sum(self.sidecar.stats().applied.values())
        cpu_before = _thread_cpu(self.sidecar.name)
        latencies = _verify_in_threads(self.check, self.pool, self.seconds)
        self.sidecar_cpu[kind].append((_thread_cpu(self.sidecar.name) - cpu_before) / self.seconds)
        if kind == "loaded":
            applied = sum(self.sidecar.stats().applied.values()) - applied_before
            self.applied_rates.append(applied / self.seconds)
        if switch is not None:
            switch.clear()
            time.sleep(0.3)
        return latencies


@contextmanager
def _traffic(topics: dict[str, str], bootstrap: str) -> Iterator[dict[str, EventType]]:
    """A process per topic that publishes 1,000 logouts/s while its switch is set."""
    context = multiprocessing.get_context("spawn")
    done = context.Event()
    switches = {kind: context.Event() for kind in topics}
    generators = [
        context.Process(target=_publish, args=(bootstrap, topic, 1000, switches[kind], done))
        for kind, topic in topics.items()
    ]
    for generator in generators:
        generator.start()
    try:
        yield switches
    finally:
        done.set()
        for generator in generators:
            generator.join(30)


def _publish(bootstrap: str, topic: str, rate: int, active: EventType, done: EventType) -> None:
    """In another process: publish ``rate`` logouts per second while ``active`` is set."""
    with RevocationPublisher(bootstrap, topic, issuer="bench-traffic") as publisher:
        per_tick = max(1, rate // 100)
        next_tick = time.monotonic()
        while not done.is_set():
            if not active.wait(0.05):
                next_tick = time.monotonic()
                continue
            exp = time.time() + 600
            publisher.publish_many(
                [logout(str(uuid.uuid4()), f"user-{i}", exp) for i in range(per_tick)]
            )
            next_tick += 0.01
            time.sleep(max(0.0, next_tick - time.monotonic()))


def _verify_in_threads(check: RevocationVerifier, pool: list[str], seconds: float) -> list[float]:
    """Seconds per ``verify`` of two threads verifying for ``seconds``."""
    latencies: list[list[float]] = [[], []]
    deadline = time.perf_counter() + seconds

    def work(out: list[float], offset: int) -> None:
        clock = time.perf_counter_ns
        i = offset
        while time.perf_counter() < deadline:
            tok = pool[i % 1000]
            start = clock()
            check.verify(tok)
            out.append((clock() - start) / 1e9)
            i += 1

    threads = [threading.Thread(target=work, args=(latencies[n], n * 500)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies[0] + latencies[1]


def _thread_cpu(name: str) -> float:
    """CPU seconds used so far by this process's thread called ``name`` (Linux)."""
    for thread in threading.enumerate():
        if thread.name == name and thread.native_id is not None:
            path = f"/proc/self/task/{thread.native_id}/stat"
            with open(path, encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def report(figures: Figures) -> list[Report]:
    """Row 7."""
    stats, seconds = figures.stats, figures.seconds
    quiet, loaded, other = stats["quiet"], stats["loaded"], stats["elsewhere"]
    ratio = loaded.p99 / quiet.p99
    notes = [
        f"revocations applied while loaded: {[round(r) for r in figures.applied_rates]} per "
        "second (published by a second process)"
    ]
    notes += [
        f"{kind}: {s.count:,} verifies ({s.count / seconds:,.0f}/s), p50 {us(s.median)}, "
        f"p99 {us(s.p99)}; the sidecar thread used {figures.sidecar_cpu[kind]:.1%} of a core"
        for kind, s in stats.items()
    ]
    notes += [
        f"p99 while the sidecar applies the traffic is {loaded.p99 / other.p99:.2f}x the p99 "
        "while the same traffic goes elsewhere: what is left is the machine, not the sidecar",
        "signature checked on every call (cache off); the two threads share the GIL, and the "
        "broker and the publishing process share the machine's cores",
    ]
    return [
        Report(
            result=(
                f"p50 {us(loaded.median)}, p99 {us(loaded.p99)}; "
                f"{loaded.count / seconds:,.0f} verifies/s"
            ),
            compared=(
                f"quiet: p50 {us(quiet.median)}, p99 {us(quiet.p99)}, "
                f"{quiet.count / seconds:,.0f} verifies/s; p99 ratio {ratio:.2f}x. Same traffic "
                f"to a topic not read here: p99 {us(other.p99)} ({other.p99 / quiet.p99:.2f}x)"
            ),
            target="p99 within 2x of quiet",
            met=ratio <= 2 and min(figures.applied_rates) >= 900,
            notes=notes,
        )
    ]
