"""The secured broker, the three-node cluster and the TLS Redis that ``scripts/services.sh`` runs.

What the tests (``tests/integration/secured``) and the benchmark rows share about them: where
they listen, the certificates and passwords ``scripts/kafka/pki.py`` made, a
:class:`KafkaConnection` for each role, topics with exactly a role's ACLs, and the cluster's
nodes (which one leads a partition, killing and restarting one, waiting until every replica is
back in sync).

Several test sessions may share these services (engineers run ``make test`` side by side): a
test that kills cluster nodes holds :meth:`Cluster.exclusive`, one that only uses the cluster
holds :meth:`Cluster.shared`, so a kill never lands in the middle of another session's test.
The plain broker's tests do the same with :func:`services_lock` (tests/integration/conftest.py).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    NewTopic,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import UnknownTopicOrPartitionError

from jwt_revocation.shared import KafkaConnection
from jwt_revocation.shared._connection import client_config, open_client

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "scripts" / "services.sh"
SASL_SSL = "127.0.0.1:29092"
MTLS = "127.0.0.1:29093"
PLAINTEXT = "127.0.0.1:29095"
"""The secured broker's PLAINTEXT listener: User:ANONYMOUS, with no ACL unless granted."""
CLUSTER_NODES = (1, 2, 3)
CLUSTER = ",".join(f"127.0.0.1:{29191 + node}" for node in CLUSTER_NODES)
REDIS_TLS = ("127.0.0.1", 6390)

PUBLISHER = ("WRITE", "DESCRIBE")
"""A publisher's rights on the topic (and IDEMPOTENT_WRITE on the cluster, granted once)."""
SIDECAR = ("READ", "DESCRIBE")
"""A sidecar's rights on the topic: nothing else."""
TOPIC_ADMIN = ("CREATE", "DESCRIBE", "DESCRIBE_CONFIGS")
"""What `topic ensure` needs on the topic."""


def services_dir() -> Path:
    """Where services.sh keeps its state."""
    return Path(os.environ.get("JWT_REVOCATION_SERVICES_DIR", ROOT / ".services"))


def pki(name: str) -> str:
    """The path of one of pki.py's files."""
    return str(services_dir() / "pki" / name)


def password(user: str) -> str:
    """A SCRAM user's (or a TLS Redis user's) password."""
    return (services_dir() / "pki" / f"{user}.password").read_text(encoding="ascii").strip()


def env_file(role: str) -> Path:
    """The JWT_REVOCATION_* settings of one role of the secured broker (``publisher``,
    ``sidecar-mtls``...)."""
    return services_dir() / "kafka-secured" / "env" / f"{role}.env"


def reachable(address: str) -> bool:
    """True when something accepts TCP connections at ``host:port``."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def services_lock(name: str, *, exclusive: bool) -> Iterator[None]:
    """Hold ``<services dir>/NAME.lock``, shared or exclusive, for the block: how test sessions on
    one machine share a service that some tests kill or pause (the plain broker, the cluster).

    An exclusive holder waits for the shared holders of the moment and runs alone; it is not
    starved by sessions whose tests overlap (a flock alone lets shared holders take turns
    forever): it first holds ``NAME.turn.lock``, which a shared taker passes through before it
    takes its share, so new shared holders wait behind it. The files are opened close-on-exec:
    no process a test starts holds them.
    """
    folder = services_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with (
        open(folder / f"{name}.turn.lock", "a+", encoding="ascii") as turn,
        open(folder / f"{name}.lock", "a+", encoding="ascii") as held,
    ):
        fcntl.flock(turn, fcntl.LOCK_EX)
        try:
            fcntl.flock(held, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            if not exclusive:
                fcntl.flock(turn, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(turn, fcntl.LOCK_UN)


def services(*args: str, check: bool = True) -> None:
    """Run ``scripts/services.sh ARGS``."""
    subprocess.run([str(SERVICES), *args], check=check, timeout=300)  # noqa: S603 - our script


def ensure_running(service: str, addresses: Iterable[str]) -> list[str]:
    """Start ``service`` (``secured``, ``cluster``, ``redis-tls``) unless every address answers;
    return the addresses that still do not."""
    addresses = list(addresses)
    if not all(reachable(a) for a in addresses):
        services(f"{service}-start", check=False)
    return [a for a in addresses if not reachable(a)]


# -- connections -------------------------------------------------------------------------------


def scram(user: str, secret: str | None = None, *, cafile: str | None = None) -> KafkaConnection:
    """SASL_SSL with SCRAM-SHA-512 as ``user``."""
    return KafkaConnection(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=user,
        sasl_password=password(user) if secret is None else secret,
        ssl_cafile=cafile or pki("ca.pem"),
    )


def mtls(role: str, *, encrypted_key: bool = False, other_ca: bool = False) -> KafkaConnection:
    """Mutual TLS with ``role``'s certificate (``other_ca``: the one another CA signed)."""
    if other_ca:
        return KafkaConnection(
            security_protocol="SSL",
            ssl_cafile=pki("ca.pem"),
            ssl_certfile=pki(f"other-{role}.crt"),
            ssl_keyfile=pki(f"other-{role}.key"),
        )
    key = pki(f"{role}-encrypted.key" if encrypted_key else f"{role}.key")
    return KafkaConnection(
        security_protocol="SSL",
        ssl_cafile=pki("ca.pem"),
        ssl_certfile=pki(f"{role}.crt"),
        ssl_keyfile=key,
        ssl_password=password(f"{role}-key") if encrypted_key else None,
    )


def unsigned_token(subject: str, ttl: int = 3600) -> str:
    """An unsigned JWT (``alg: none``) for the test broker's unsecured OAUTHBEARER validator."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return f"{part({'alg': 'none'})}.{part({'sub': subject, 'iat': now, 'exp': now + ttl})}."


def oauth(subject: str) -> KafkaConnection:
    """SASL_SSL with OAUTHBEARER, a fresh unsigned token for ``subject`` at each authentication."""
    return KafkaConnection(
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=lambda: unsigned_token(subject),
        ssl_cafile=pki("ca.pem"),
    )


def admin(bootstrap: str, connection: KafkaConnection | None = None) -> Any:
    """An admin client (the super user ``admin`` on the secured broker by default)."""
    connection = connection or (scram("admin") if bootstrap == SASL_SSL else None)
    config = client_config("admin", bootstrap, connection, client_id="tests-admin", timeout=30)
    return open_client("admin", config, connection, timeout=30)


# -- topics with exactly a role's ACLs ---------------------------------------------------------


def _acl(principal: str, operation: str, resource: ResourcePattern) -> ACL:
    return ACL(
        principal=principal,
        host="*",
        operation=getattr(ACLOperation, operation),
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=resource,
    )


def grant(client: Any, topic: str, rights: dict[str, tuple[str, ...]]) -> None:
    """Allow each ``User:<name>`` its operations on ``topic``; a publisher (WRITE) gets
    IDEMPOTENT_WRITE on the cluster too."""
    pattern = ResourcePattern(ResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL)
    cluster = ResourcePattern(ResourceType.CLUSTER, "kafka-cluster", ACLResourcePatternType.LITERAL)
    acls = []
    for user, operations in rights.items():
        principal = f"User:{user}"
        acls += [_acl(principal, operation, pattern) for operation in operations]
        if "WRITE" in operations:
            acls.append(_acl(principal, "IDEMPOTENT_WRITE", cluster))
    result = client.create_acls(acls)
    if result["failed"]:
        raise RuntimeError(f"ACLs refused: {result['failed']}")
    # The controller has them; the broker's authorizer applies them a moment later.
    deadline = time.monotonic() + 10
    on_topic = sum(len(list(operations)) for operations in rights.values())
    while len(client.describe_acls(_acl_filter(topic))[0]) < on_topic:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the ACLs of {topic} were not in force within 10 s")
        time.sleep(0.05)


def _acl_filter(topic: str) -> ACLFilter:
    return ACLFilter(
        principal=None,
        host="*",
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(
            ResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL
        ),
    )


def create_topic(client: Any, name: str, partitions: int = 3, replicas: int = 1) -> None:
    """A topic with a safe retention (2 days), as `topic ensure` would make it."""
    client.create_topics(
        [
            NewTopic(
                name,
                partitions,
                replicas,
                topic_configs={
                    "retention.ms": str(2 * 86_400_000),
                    "retention.bytes": "-1",
                    "cleanup.policy": "delete",
                    **({"min.insync.replicas": "2"} if replicas >= 3 else {}),
                },
            )
        ]
    )


def delete_topics(client: Any, names: list[str]) -> None:
    """Delete topics (and, on the secured broker, their ACLs), ignoring ones already gone."""
    if not names:
        return
    with suppress(UnknownTopicOrPartitionError):
        client.delete_topics(names, timeout_ms=30_000)
    if client.config["security_protocol"] == "PLAINTEXT":
        return
    client.delete_acls([_acl_filter(name) for name in names])


def topic_name(label: str) -> str:
    """A fresh topic name."""
    return f"{label}-{uuid.uuid4().hex[:10]}"


# -- the three-node cluster ---------------------------------------------------------------------


@dataclass(frozen=True)
class LeaderKill:
    """A node SIGKILLed while it led partitions of a topic."""

    node: int
    partitions: frozenset[int]
    """The partitions it led."""
    controller: int
    """The active controller then (another node, unless every leader was the controller)."""
    at: float
    """When, in monotonic seconds."""

    def resumed(self, acknowledged: Iterable[tuple[int, float, float]]) -> float | None:
        """Seconds from the kill until every partition it led acknowledged a publish sent after
        it, from ``(partition, sent, acknowledged)`` in monotonic seconds; None until then."""
        first: dict[int, float] = {}
        for partition, sent, acked in acknowledged:
            if sent > self.at and partition in self.partitions:
                first[partition] = min(acked, first.get(partition, acked))
        if set(first) != self.partitions:
            return None
        return max(first.values()) - self.at


@dataclass
class Cluster:
    """The three-node cluster: its nodes, who leads what, kills and restarts."""

    bootstrap: str = CLUSTER

    @staticmethod
    def address(node: int) -> str:
        """Where node ``node`` listens."""
        return f"127.0.0.1:{29191 + node}"

    def shared(self) -> Any:
        """Held while a test uses the cluster without killing nodes."""
        return services_lock("kafka-cluster.tests", exclusive=False)

    def exclusive(self) -> Any:
        """Held while a test kills nodes: no other session's test runs on the cluster then."""
        return services_lock("kafka-cluster.tests", exclusive=True)

    def kill(self, node: int) -> None:
        """SIGKILL node ``node``: a crash."""
        services("cluster-kill", str(node))

    def start(self, node: int) -> None:
        """Start node ``node`` again (its data is kept) and wait for its port."""
        services("cluster-node-start", str(node))
        deadline = time.monotonic() + 120
        while not reachable(self.address(node)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster node {node} did not come back within 120 s")
            time.sleep(0.2)

    def leaders(self, client: Any, topic: str) -> dict[int, int]:
        """Partition -> the node leading it."""
        described = client.describe_topics([topic])[0]
        return {p["partition_index"]: p["leader_id"] for p in described["partitions"]}

    def kill_a_leader(self, client: Any, topic: str) -> LeaderKill:
        """SIGKILL a node leading partitions of ``topic`` that is not the active controller (the
        usual case, measured apart from an election of the controller itself)."""
        leaders = self.leaders(client, topic)
        controller = self.controller(client)
        victim = next((n for n in leaders.values() if n != controller), leaders[0])
        led = frozenset(p for p, n in leaders.items() if n == victim)
        killed = time.monotonic()
        self.kill(victim)
        return LeaderKill(victim, led, controller, killed)

    def controller(self, client: Any) -> int:
        """The active KRaft controller (describe_cluster names a random broker in KRaft)."""
        quorum = client.describe_metadata_quorum()
        return int(quorum["topics"][0]["partitions"][0]["leader_id"])

    def wait_healthy(self, client: Any, topics: Iterable[str] = (), timeout: float = 120) -> None:
        """Wait until all three brokers are registered and every replica of ``topics`` (known
        to the cluster's metadata, with a leader) is in sync."""
        topics = list(topics)
        deadline = time.monotonic() + timeout
        while True:
            try:
                brokers = client.describe_cluster()["brokers"]
                described = client.describe_topics(topics) if topics else []
                synced = all(topic["partitions"] for topic in described) and all(
                    len(p["isr_nodes"]) == len(p["replica_nodes"]) and p["leader_id"] >= 0
                    for topic in described
                    for p in topic["partitions"]
                )
                if len(brokers) == len(CLUSTER_NODES) and synced:
                    return
            except Exception:  # noqa: BLE001, S110 - a cluster in recovery answers errors; ask again
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not recover within {timeout} s")
            time.sleep(0.2)
