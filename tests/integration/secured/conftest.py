"""Fixtures for the secured broker, the three-node cluster and the TLS Redis.

Each is started by ``scripts/services.sh`` when it does not answer, once per session, and
shared by every test; a missing one fails the tests, it is never a reason to skip. Topics made
here are deleted, with their ACLs, at the end of the session. The figures the tests measure
(time to a clear error, fail-over) are printed in the session's summary.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bench.secured import (
    CLUSTER,
    CLUSTER_NODES,
    MTLS,
    PUBLISHER,
    REDIS_TLS,
    SASL_SSL,
    SIDECAR,
    Cluster,
    admin,
    create_topic,
    delete_topics,
    ensure_running,
    grant,
    reachable,
    topic_name,
)

FIGURES: list[str] = []
"""What the tests measured, printed at the end of the session."""


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the measured figures."""
    if FIGURES:
        terminalreporter.section("secured broker and cluster: measured")
        for line in FIGURES:
            terminalreporter.write_line(line)


@dataclass
class Broker:
    """An admin client (a super user on the secured broker) and the topics made through it."""

    client: Any
    created: list[str] = field(default_factory=list)

    def topic(
        self, label: str, rights: dict[str, tuple[str, ...]] | None = None, **options: Any
    ) -> str:
        """A fresh topic; ``rights`` are the ACLs each user gets on it (none: only the admin)."""
        name = topic_name(label)
        create_topic(self.client, name, **options)
        self.created.append(name)
        if rights:
            grant(self.client, name, rights)
        return name

    def forget(self, name: str) -> None:
        """Delete ``name`` (and its ACLs) at the end of the session too."""
        self.created.append(name)


@pytest.fixture(scope="session")
def secured() -> Iterator[Broker]:
    """The secured broker, its admin client, and the topics the session made on it."""
    missing = ensure_running("secured", [SASL_SSL, MTLS])
    if missing:
        pytest.fail(
            f"secured broker not reachable at {missing}; run `make services`", pytrace=False
        )
    broker = Broker(admin(SASL_SSL))
    yield broker
    delete_topics(broker.client, broker.created)
    broker.client.close()


@pytest.fixture
def secured_topic(secured: Broker) -> str:
    """A topic of the secured broker with the publisher's and the sidecar's ACLs, nothing more."""
    return secured.topic("secured", {"publisher": PUBLISHER, "sidecar": SIDECAR})


@pytest.fixture(scope="session")
def cluster_broker() -> Iterator[Broker]:
    """The three-node cluster's admin client, and the topics the session made on it."""
    missing = ensure_running("cluster", [Cluster.address(n) for n in CLUSTER_NODES])
    if missing:
        pytest.fail(f"cluster nodes not reachable at {missing}; run `make services`", pytrace=False)
    broker = Broker(admin(CLUSTER))
    yield broker
    delete_topics(broker.client, broker.created)
    broker.client.close()


@pytest.fixture
def cluster(cluster_broker: Broker) -> Iterator[Cluster]:
    """The cluster, healthy, while no other session kills its nodes."""
    nodes = Cluster()
    with nodes.shared():
        nodes.wait_healthy(cluster_broker.client)
        yield nodes


@pytest.fixture
def cluster_faults(cluster_broker: Broker) -> Iterator[Cluster]:
    """The cluster for a test that kills nodes: no other session's test runs on it meanwhile,
    and every node is running and in sync again afterwards, whatever the test did."""
    nodes = Cluster()
    with nodes.exclusive():
        nodes.wait_healthy(cluster_broker.client)
        try:
            yield nodes
        finally:
            for node in CLUSTER_NODES:
                if not reachable(Cluster.address(node)):
                    nodes.start(node)
            existing = set(cluster_broker.client.list_topics())
            nodes.wait_healthy(
                cluster_broker.client, [t for t in cluster_broker.created if t in existing]
            )


@pytest.fixture(scope="session")
def tls_redis() -> tuple[str, int]:
    """The Redis with TLS and passwords."""
    address = "{}:{}".format(*REDIS_TLS)
    if ensure_running("redis-tls", [address]):
        pytest.fail(f"TLS Redis not reachable at {address}; run `make services`", pytrace=False)
    return REDIS_TLS
