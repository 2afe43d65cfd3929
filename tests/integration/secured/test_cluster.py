"""The three-node KRaft cluster: replication that survives a broker, and fail-over.

The cluster (``scripts/services.sh cluster-start``) runs three combined broker+controller nodes
with ``min.insync.replicas=2`` and brokers fenced after 3 s without a heartbeat. The fault tests
hold the cluster alone (:meth:`Cluster.exclusive`) and leave every node running and in sync.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest

from bench.secured import CLUSTER, Cluster, topic_name
from jwt_revocation.consumer import RevocationSidecar
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import (
    PublishError,
    ReplicationTooLowError,
    check_topic,
    ensure_topic,
)
from jwt_revocation.shared._topic import _ask_brokers
from tests.integration.conftest import LIFETIME, verifier_for
from tests.support import wait_for

from .conftest import FIGURES, Broker


def test_topic_ensure_returns_once_every_broker_describes_the_topic_it_made(
    cluster: Cluster, cluster_broker: Broker
) -> None:
    for _ in range(3):  # before, a broker behind the controller answered now and then
        name = topic_name("replicated")
        cluster_broker.forget(name)

        info = ensure_topic(CLUSTER, name, max_token_lifetime=LIFETIME, partitions=3)

        # Right away, each broker's own metadata and configuration.
        views = _ask_brokers(cluster_broker.client, name, configs=True)
        assert sorted(view.node for view in views) == [1, 2, 3]
        for view in views:
            assert len(view.partitions) == 3
            assert all(len(p["replica_nodes"]) == 3 for p in view.partitions)
            assert view.configs is not None
            assert view.configs["min.insync.replicas"] == "2"
            assert view.configs["retention.ms"] == str(info.retention_ms)
        assert (info.brokers, info.replication_factor, info.min_insync_replicas) == (3, 3, 2)
        assert info.warnings == ()
        checked = check_topic(CLUSTER, name, max_token_lifetime=LIFETIME, strict_replication=True)
        assert checked == info


def test_a_sidecar_and_a_publisher_started_as_a_topic_is_created_find_it(
    cluster: Cluster, cluster_broker: Broker
) -> None:
    # A topic some broker does not list yet: the sidecar and the publisher wait for it within
    # their timeouts (before, a sidecar's start failed with TopicNotFoundError about one time
    # in four when its check asked such a broker).
    for round_ in range(5):
        topic = cluster_broker.topic(f"fresh-{round_}", partitions=3, replicas=3)
        sidecar = RevocationSidecar(CLUSTER, topic, max_token_lifetime=LIFETIME)
        try:
            sidecar.start(timeout=30)
            with RevocationPublisher(CLUSTER, topic, issuer="tests", timeout=30) as publisher:
                published = publisher.password_changed(user_id=f"user-{round_}")
            wait_for(lambda s=sidecar, p=published: s.applied_through(p.partition, p.offset))  # type: ignore[misc]
        finally:
            sidecar.stop()


def test_a_topic_one_broker_can_empty_is_reported_and_refused_when_strict(
    cluster: Cluster, cluster_broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    single = topic_name("single")
    weak = topic_name("min-isr-1")
    cluster_broker.forget(single)
    cluster_broker.forget(weak)

    with caplog.at_level(logging.WARNING, logger="jwt_revocation"):
        ensure_topic(CLUSTER, single, max_token_lifetime=LIFETIME, replication_factor=1)
        ensure_topic(
            CLUSTER, weak, max_token_lifetime=LIFETIME, replication_factor=3, min_insync_replicas=1
        )
        # Right after creation a broker may still describe the cluster's default for the new
        # topic; a check a moment later reads the topic's own setting.
        wait_for(
            lambda: (
                "min.insync.replicas=1"
                in " ".join(check_topic(CLUSTER, weak, max_token_lifetime=LIFETIME).warnings)
            ),
            timeout=30,
        )
        started = RevocationSidecar(CLUSTER, single, max_token_lifetime=LIFETIME)
        started.start(timeout=30)
        started.stop()
    with pytest.raises(ReplicationTooLowError, match="replication factor 1 on a cluster of 3"):
        check_topic(CLUSTER, single, max_token_lifetime=LIFETIME, strict_replication=True)
    with pytest.raises(ReplicationTooLowError, match=r"min\.insync\.replicas=1"):
        RevocationSidecar(
            CLUSTER, weak, max_token_lifetime=LIFETIME, strict_replication=True
        ).start(timeout=30)
    strict_cli = subprocess.run(
        [sys.executable, "-m", "jwt_revocation.cli", "--topic", single, "topic", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "JWT_REVOCATION_BOOTSTRAP_SERVERS": CLUSTER,
            "JWT_REVOCATION_STRICT_REPLICATION": "true",
        },
    )

    assert caplog.text.count(f"topic {single!r} has replication factor 1") == 2  # ensure, start
    assert f"topic {weak!r} has min.insync.replicas=1" in caplog.text
    assert strict_cli.returncode == 2
    assert "(strict_replication)" in strict_cli.stderr


@dataclass
class Traffic:
    """A publisher writing continuously, and what it saw."""

    publisher: RevocationPublisher
    acknowledged: list[tuple[str, int, float, float]] = field(default_factory=list)
    """(jti, partition, sent, acknowledged), monotonic seconds."""
    failed: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        count = 0
        while not self.stop.is_set():
            jti = uuid.uuid4().hex
            sent = time.monotonic()
            try:
                meta = self.publisher.logout(
                    jti=jti, user_id=f"user-{count}", expires_at=time.time() + 600
                )
            except PublishError as err:
                self.failed.append(str(err))
            else:
                self.acknowledged.append((jti, meta.partition, sent, time.monotonic()))
            count += 1
            self.stop.wait(0.02)


def _replicated(cluster: Cluster, broker: Broker, label: str) -> str:
    """A fresh topic with three replicas and min.insync.replicas=2, every replica in sync."""
    topic = broker.topic(label, partitions=3, replicas=3)
    cluster.wait_healthy(broker.client, [topic])
    return topic


def _readiness(sidecars: list[RevocationSidecar], stop: threading.Event, out: list[str]) -> None:
    while not stop.wait(0.05):
        out += [s.name for s in sidecars if not s.ready]


def test_a_leader_kill_loses_no_acknowledged_revocation(
    cluster_faults: Cluster, cluster_broker: Broker
) -> None:
    client = cluster_broker.client
    topic = _replicated(cluster_faults, cluster_broker, "failover")
    sidecars = [
        RevocationSidecar(CLUSTER, topic, max_token_lifetime=LIFETIME, name=f"failover-{i}")
        for i in range(2)
    ]
    for sidecar in sidecars:
        sidecar.start(timeout=30)
    traffic = Traffic(RevocationPublisher(CLUSTER, topic, issuer="tests", timeout=30))
    not_ready: list[str] = []
    threads = [
        threading.Thread(target=traffic.run),
        threading.Thread(target=_readiness, args=(sidecars, traffic.stop, not_ready)),
    ]
    try:
        for thread in threads:
            thread.start()
        wait_for(lambda: len(traffic.acknowledged) >= 20, timeout=20)
        kill = cluster_faults.kill_a_leader(client, topic)
        recovery = wait_for(lambda: kill.resumed(a[1:] for a in traffic.acknowledged), 60)
        stall = max(acked - sent for _, _, sent, acked in traffic.acknowledged)
        cluster_faults.start(kill.node)
        cluster_faults.wait_healthy(client, [topic])
        wait_for(lambda: len(traffic.acknowledged) >= 20 + 50, timeout=30)
    finally:
        traffic.stop.set()
        for thread in threads:
            thread.join(60)
        traffic.publisher.close()
    try:
        for sidecar in sidecars:
            verifier = verifier_for(sidecar)
            wait_for(
                lambda v=verifier: all(  # type: ignore[misc]
                    v.is_revoked(jti=jti) == "token_revoked" for jti, *_ in traffic.acknowledged
                ),
                timeout=30,
            )
    finally:
        for sidecar in sidecars:
            sidecar.stop()

    assert traffic.failed == []  # within the publish timeout (30 s), every publish succeeded
    assert not_ready == []  # an outage shorter than max_staleness (30 s) keeps them ready
    FIGURES.append(
        f"leader kill (node {kill.node}, leading partitions {sorted(kill.partitions)}, "
        f"controller node {kill.controller}): publishes to its partitions acknowledged again {recovery:.2f} s after "
        f"the SIGKILL; the longest publish took {stall:.2f} s; "
        f"{len(traffic.acknowledged)} acknowledged, none lost, both sidecars ready throughout"
    )


def test_two_of_three_brokers_down_is_a_clear_publish_error(
    cluster_faults: Cluster, cluster_broker: Broker
) -> None:
    client = cluster_broker.client
    topic = _replicated(cluster_faults, cluster_broker, "quorum-lost")
    publisher = RevocationPublisher(CLUSTER, topic, issuer="tests", timeout=5)
    before = [uuid.uuid4().hex for _ in range(30)]
    for i, jti in enumerate(before):
        publisher.logout(jti=jti, user_id=f"user-{i}", expires_at=time.time() + 600)
    down = [n for n in (1, 2, 3) if n != cluster_faults.leaders(client, topic)[0]][:2]
    try:
        for node in down:
            cluster_faults.kill(node)
        started = time.monotonic()
        with pytest.raises(PublishError) as refused:
            publisher.logout(jti="during", user_id="user-0", expires_at=time.time() + 600)
        elapsed = time.monotonic() - started
    finally:
        publisher.close(timeout=1)
        for node in down:
            cluster_faults.start(node)
        cluster_faults.wait_healthy(client, [topic])
    rebuilt = RevocationSidecar(CLUSTER, topic, max_token_lifetime=LIFETIME)
    rebuilt.start(timeout=60)
    try:
        verifier = verifier_for(rebuilt)
        missing = [jti for jti in before if verifier.is_revoked(jti=jti) is None]
    finally:
        rebuilt.stop()

    assert elapsed < 5 + 1, elapsed
    assert refused.value.retriable is True
    assert "was not acknowledged by the broker within 5.0 s" in str(refused.value)
    assert missing == []
    FIGURES.append(
        f"two of three nodes down (SIGKILL {down}): PublishError after {elapsed:.2f} s "
        "(publish timeout 5 s); every event acknowledged before was there after the restart"
    )
