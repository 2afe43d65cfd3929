"""Row 14: the three-node cluster's fail-over, a partition leader killed while a publisher writes.

A publisher writes one logout after another (``acks=all``, publish timeout 30 s) to a topic with
three replicas and ``min.insync.replicas=2``; a node that leads a partition, and is not the
active controller, is SIGKILLed. The figure is the time from the kill until publishes to every
partition it led are acknowledged again, and the longest single publish; then the node is
restarted and the run waits until every replica is in sync. Each round does it once with this
package's client defaults (``reconnect_backoff_max_ms`` 1 s) and once with kafka-python's
(30 s), the order alternating. The cluster (``scripts/services.sh cluster-start``) fences a
broker after 3 s without a heartbeat; the run holds it alone (:meth:`Cluster.exclusive`).
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench.fixtures import Bench
from bench.harness import Report
from bench.secured import (
    CLUSTER,
    CLUSTER_NODES,
    Cluster,
    admin,
    create_topic,
    delete_topics,
    ensure_running,
)
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import PublishError, RevocationError

VARIANTS = {"ours": {}, "kafka-python's": {"reconnect_backoff_max_ms": 30_000}}
"""Publisher options of each variant: the package's defaults, and kafka-python's backoff."""


@dataclass(frozen=True)
class Kill:
    """One leader kill: seconds until acks resumed, the longest publish, and what was lost."""

    recovery: float
    longest: float
    failed: int


@dataclass(frozen=True)
class Figures:
    """The kills of each variant."""

    kills: dict[str, list[Kill]]


def _kill_once(cluster: Cluster, client: Any, topic: str, options: dict[str, Any]) -> Kill:
    publisher = RevocationPublisher(
        CLUSTER, topic, issuer="bench", timeout=30, producer_config=options
    )
    acked: list[tuple[int, float, float]] = []
    failed: list[str] = []
    stop = threading.Event()

    def write() -> None:
        count = 0
        while not stop.is_set():
            sent = time.monotonic()
            try:
                meta = publisher.logout(
                    jti=uuid.uuid4().hex, user_id=f"user-{count}", expires_at=time.time() + 600
                )
            except PublishError as err:
                failed.append(str(err))
            else:
                acked.append((meta.partition, sent, time.monotonic()))
            count += 1
            stop.wait(0.02)

    writer = threading.Thread(target=write, name="bench-failover-writer")
    writer.start()
    try:
        _until(lambda: len(acked) >= 20, 30)
        kill = cluster.kill_a_leader(client, topic)
        _until(lambda: kill.resumed(acked) is not None, 90)
        recovery = kill.resumed(acked) or 0.0
        cluster.start(kill.node)
    finally:
        stop.set()
        writer.join(60)
        publisher.close()
    cluster.wait_healthy(client, [topic])
    return Kill(recovery, max(a - s for _, s, a in acked), len(failed))


def _until(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RevocationError(f"fail-over not over within {timeout} s")
        time.sleep(0.02)


def measure(bench: Bench) -> Figures:
    """Kill a partition leader once per variant per round (one round in quick mode, three in
    full mode)."""
    missing = ensure_running("cluster", [Cluster.address(n) for n in CLUSTER_NODES])
    if missing:
        raise RevocationError(f"cluster nodes not reachable at {missing}: make services")
    cluster = Cluster()
    client = admin(CLUSTER)
    topic = f"bench-failover-{bench.run}"
    kills: dict[str, list[Kill]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    try:
        with cluster.exclusive():
            cluster.wait_healthy(client)
            create_topic(client, topic, partitions=3, replicas=3)
            cluster.wait_healthy(client, [topic])
            for round_ in range(1 if bench.sizes.rounds < 5 else 3):
                for name in names[round_ % 2 :] + names[: round_ % 2]:
                    kills[name].append(_kill_once(cluster, client, topic, VARIANTS[name]))
    finally:
        delete_topics(client, [topic])
        client.close()
    return Figures(kills)


def report(figures: Figures) -> list[Report]:
    """Row 14."""
    ours, theirs = figures.kills["ours"], figures.kills["kafka-python's"]
    mine = statistics.median(k.recovery for k in ours)
    other = statistics.median(k.recovery for k in theirs)
    lost = sum(k.failed for k in ours + theirs)
    return [
        Report(
            result=f"acks again after {mine:.1f} s (median of {len(ours)} kills), 0 lost",
            compared=f"kafka-python's default backoff (30 s max): {other:.1f} s",
            target="< 15 s, nothing acknowledged lost",
            met=mine < 15 and lost == 0,
            notes=[
                "SIGKILL of a partition leader that is not the active controller, publishes "
                "every 20 ms: seconds until publishes to each of its partitions were "
                f"acknowledged again: {[round(k.recovery, 2) for k in ours]} with "
                f"reconnect_backoff_max_ms 1 s, {[round(k.recovery, 2) for k in theirs]} with "
                "30 s",
                f"longest single publish: {max(k.longest for k in ours):.2f} s (1 s), "
                f"{max(k.longest for k in theirs):.2f} s (30 s); publishes that failed within "
                f"their 30 s timeout: {lost}",
                "three combined broker+controller nodes (heap 256 MB each), "
                "min.insync.replicas=2, a broker fenced after 3 s without a heartbeat "
                "(Kafka's default 9 s adds about 6 s)",
            ],
        )
    ]
