"""Row 4: time from ``publish`` returning to every one of three sidecars rejecting the token.

The three sidecars and the publisher share this process (one GIL); the figure is compared with
published figures of other systems, not with a variant measured here.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from bench.fixtures import Bench, verifier
from bench.harness import Report, Stats, ms
from jwt_revocation.producer import RevocationPublisher


@dataclass(frozen=True)
class Figures:
    """What the propagation group measured, in seconds."""

    delays: Stats
    """From ``publish`` returning to all three sidecars rejecting."""
    slowest: float
    publish: Stats
    """``publish`` itself, until ``acks=all``."""


def measure(bench: Bench) -> Figures:
    """Publish logouts one by one and wait for all three sidecars to hold each."""
    topic = bench.topic("propagation")
    sidecars = [bench.sidecar(topic, f"bench-service-{i}") for i in range(3)]
    checks = [verifier(s, cache_size=0) for s in sidecars]
    delays: list[float] = []
    publish_times: list[float] = []
    try:
        with RevocationPublisher(bench.bootstrap, topic, issuer="bench") as publisher:
            publisher.logout(jti="warm-up", user_id="warm-up", expires_at=time.time() + 600)
            for i in range(bench.sizes.propagation_events):
                jti = str(uuid.uuid4())
                sent = time.perf_counter()
                publisher.logout(jti=jti, user_id=f"user-{i}", expires_at=time.time() + 600)
                returned = time.perf_counter()
                waiting = list(checks)
                while waiting:
                    waiting = [c for c in waiting if c.is_revoked(jti=jti) is None]
                    if waiting:
                        time.sleep(0.00005)  # let the sidecar threads have the GIL
                delays.append(time.perf_counter() - returned)
                publish_times.append(returned - sent)
                time.sleep(0.002)
    finally:
        for sidecar in sidecars:
            sidecar.stop()
    return Figures(Stats.of(delays), max(delays), Stats.of(publish_times))


def report(figures: Figures) -> list[Report]:
    """Row 4."""
    s, p = figures.delays, figures.publish
    return [
        Report(
            result=f"p50 {ms(s.median)}, p99 {ms(s.p99)} over {s.count:,} events",
            compared="ktables p50 0.64 ms on loopback; Entra CAE up to 15 minutes",
            target="p50 < 5 ms, p99 < 25 ms",
            met=s.median < 0.005 and s.p99 < 0.025,
            notes=[
                f"publish to enforced by all 3: p50 {ms(s.median)}, p99 {ms(s.p99)}, "
                f"max {ms(figures.slowest)}",
                f"publish itself (until acks=all): p50 {ms(p.median)}, p99 {ms(p.p99)}",
                "the 3 sidecars and the publisher share one process (one GIL), on 6 partitions",
            ],
        )
    ]
