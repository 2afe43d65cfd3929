"""The revocation topic: create it with a safe retention and replication, and check one.

A sidecar rebuilds its state by replaying ``max_token_lifetime`` of events. A topic that keeps
less than that, deletes by size, or compacts by key (the key is the user id: compaction would
keep one event per user and drop older logouts) would make a rebuilt sidecar forget live
revocations, so :func:`check_topic` refuses such a topic.

On a cluster of several brokers, a topic with one replica, or with ``min.insync.replicas=1``
(an ``acks=all`` write then needs the leader alone), loses acknowledged revocations with one
broker: :func:`check_topic` warns about it, and refuses it with ``strict_replication``.
:func:`ensure_topic` creates the topic with three replicas and ``min.insync.replicas=2`` on
three brokers or more. A principal that may not read the topic's configuration
(``DESCRIBE_CONFIGS``, which a sidecar's least-privilege role lacks) gets a warning that
retention and ``min.insync.replicas`` went unchecked, and a refusal under ``strict_replication``.
Every admin client comes from the one builder (``_connection``), with the caller's
:class:`KafkaConnection`.

A topic is found by asking every live broker for its own metadata (and, for a check, its own
description of the topic's configuration): kafka-python's ``describe_topics`` and
``describe_configs`` ask one broker of its choice, and a broker whose metadata has not caught up
with a new topic yet answers "unknown topic" (measured on the three-node test cluster: every
broker lists a new topic 0.4 s after its creation, at most 0.6 s in 40 creations under load).

1. :func:`ensure_topic` returns only once every live broker lists the topic, each partition
   with its replicas, and describes the retention and ``min.insync.replicas`` it set; else it
   raises within its ``timeout``.
2. :func:`check_topic` (a sidecar's start, ``topic check``) and :func:`wait_for_topic` (a
   publisher's start) take the topic as soon as one broker lists it; while some broker lists
   it, they wait for it within their timeout.
3. A topic that no broker lists is a :class:`TopicNotFoundError` after
   :data:`TOPIC_APPEAR_TIMEOUT` (or the timeout, if shorter): long enough for a topic being
   created at that moment to reach its first broker, short enough that a missing topic is a
   clear error at once, not a wait for the whole timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from typing import Any

# kafka-python (about 180 ms to import) is imported inside the functions that talk to a
# broker, so that importing the package costs nothing for a process that never does.
from ._connection import KafkaConnection, authorization_detail, client_config, open_client
from ._duration import DurationLike, parse_duration
from ._errors import (
    KafkaAccessError,
    ReplicationTooLowError,
    RetentionTooShortError,
    TopicError,
    TopicNotFoundError,
)

logger = logging.getLogger(__name__)

DEFAULT_RETENTION_MARGIN = timedelta(days=1)

TOPIC_APPEAR_TIMEOUT = 2.0
"""Seconds a topic that no broker lists is waited for before :class:`TopicNotFoundError`.

A topic created at that moment is listed by its first broker 0.02 s after the creation returns
(median; at most 0.26 s in 80 creations on the plain broker and the three-node cluster, load
average 7 on two cores): 2 s is about eight times that."""

_ASK_AGAIN = 0.1
"""Seconds between two rounds of questions to the brokers while waiting for a topic."""


@dataclass(frozen=True)
class TopicInfo:
    """What a sidecar needs to know about the revocation topic."""

    name: str
    partitions: int
    retention_ms: int | None
    """``-1`` means events are kept forever; None that this principal may not read it."""
    replication_factor: int = 1
    """The fewest replicas of any partition."""
    min_insync_replicas: int | None = None
    """None when this principal may not read the topic's configuration."""
    brokers: int = 1
    warnings: tuple[str, ...] = ()
    """What could lose revocations or went unchecked, as logged."""


def _admin(bootstrap_servers: str, timeout: float, connection: KafkaConnection | None) -> Any:
    config = client_config(
        "admin", bootstrap_servers, connection, client_id="jwt-revocation-admin", timeout=timeout
    )
    return open_client("admin", config, connection, timeout=timeout)


def ensure_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    max_token_lifetime: DurationLike,
    partitions: int = 6,
    retention_margin: DurationLike = DEFAULT_RETENTION_MARGIN,
    timeout: float = 10.0,
    connection: KafkaConnection | None = None,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
    strict_replication: bool = False,
) -> TopicInfo:
    """Create the topic if it is missing, then check it as a sidecar would; return what it is.

    A new topic gets ``replication_factor`` replicas (default: 3, or every broker of a smaller
    cluster) and ``min.insync.replicas`` (default: 2 with three replicas or more, else the
    broker's). An existing topic is only checked. It returns once every live broker lists the
    topic and describes the replicas and settings it was given, within ``timeout`` (rule 1).
    Durations are a ``timedelta``, seconds, or text such as ``1h`` (see :func:`parse_duration`).
    """
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError, TopicAuthorizationFailedError

    max_token_lifetime = parse_duration(max_token_lifetime, name="max_token_lifetime")
    retention = max_token_lifetime + parse_duration(retention_margin, name="retention_margin")
    admin = _admin(bootstrap_servers, timeout, connection)
    try:
        brokers = _brokers(admin)
        replicas = replication_factor or min(3, brokers)
        if min_insync_replicas is None and replicas >= 3:
            min_insync_replicas = 2
        configs = {
            "retention.ms": str(int(retention.total_seconds() * 1000)),
            "retention.bytes": "-1",
            "cleanup.policy": "delete",
            "message.timestamp.type": "CreateTime",
        }
        if min_insync_replicas is not None:
            configs["min.insync.replicas"] = str(min_insync_replicas)
        settled: Callable[[_BrokerView], bool] | None = None
        try:
            admin.create_topics([NewTopic(topic, partitions, replicas, topic_configs=configs)])
            logger.info(
                "created topic topic=%s partitions=%d replication_factor=%d "
                "min_insync_replicas=%s retention_s=%d",
                topic,
                partitions,
                replicas,
                min_insync_replicas or "default",
                retention.total_seconds(),
            )
            # A new topic reaches each broker's metadata a moment later (rule 1).
            expected = {"retention.ms": configs["retention.ms"]}
            if min_insync_replicas is not None:
                expected["min.insync.replicas"] = str(min_insync_replicas)
            settled = partial(_BrokerView.has, replicas=replicas, expected=expected)
        except TopicAlreadyExistsError:
            logger.info("topic exists topic=%s", topic)
        except TopicAuthorizationFailedError as err:
            detail = authorization_detail(
                err, connection, operation=f"CREATE topic {topic!r}", role="topic admin"
            )
            raise KafkaAccessError(f"cannot create: {detail}", reason="not_authorized") from err
        except KafkaError as err:
            raise TopicError(f"cannot create topic {topic!r}: {err}") from err
        return _check(
            admin,
            topic,
            max_token_lifetime,
            connection,
            strict=strict_replication,
            wait=timeout,
            everywhere=True,
            settled=settled,
        )
    finally:
        admin.close()


def check_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    max_token_lifetime: DurationLike,
    timeout: float = 10.0,
    connection: KafkaConnection | None = None,
    strict_replication: bool = False,
    wait: float | None = None,
) -> TopicInfo:
    """Raise unless the topic exists and keeps every event for at least ``max_token_lifetime``;
    warn (or, ``strict_replication``, raise) when it could lose acknowledged revocations.

    ``timeout`` bounds reaching Kafka; ``wait`` (default: ``timeout``) how long a topic that
    some broker does not list yet is waited for. One that no broker lists is a
    :class:`TopicNotFoundError` after :data:`TOPIC_APPEAR_TIMEOUT`.
    """
    max_token_lifetime = parse_duration(max_token_lifetime, name="max_token_lifetime")
    admin = _admin(bootstrap_servers, timeout, connection)
    try:
        return _check(
            admin,
            topic,
            max_token_lifetime,
            connection,
            strict=strict_replication,
            wait=timeout if wait is None else wait,
        )
    finally:
        admin.close()


def wait_for_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    timeout: float = 10.0,
    connection: KafkaConnection | None = None,
    role: str = "publisher",
) -> int:
    """Return the topic's partition count once a broker lists it; raise
    :class:`TopicNotFoundError` when none does after :data:`TOPIC_APPEAR_TIMEOUT`.

    Needs only DESCRIBE on the topic (``role`` names who lacks it in the error).
    """
    admin = _admin(bootstrap_servers, timeout, connection)
    try:
        listed = _await_topic(
            admin, topic, connection, wait=timeout, role=role, everywhere=False, configs=False
        )
    finally:
        admin.close()
    return max(len(view.partitions) for view in listed)


def topic_listed(
    bootstrap_servers: str,
    topic: str,
    *,
    timeout: float = 10.0,
    connection: KafkaConnection | None = None,
) -> bool | None:
    """Whether some broker lists the topic now, asked once; None when that cannot be told (no
    broker answered, or this principal may not describe the topic)."""
    from kafka.errors import KafkaError, TopicAuthorizationFailedError

    try:
        admin = _admin(bootstrap_servers, timeout, connection)
    except KafkaAccessError:
        return None
    try:
        views = _ask_brokers(admin, topic, configs=False)
    except (KafkaError, TopicError):
        return None
    finally:
        admin.close()
    if any(view.metadata_error == TopicAuthorizationFailedError.errno for view in views):
        return None
    return any(view.listed for view in views)


def _brokers(admin: Any) -> int:
    from kafka.errors import KafkaError

    try:
        return len(admin.describe_cluster().get("brokers", [])) or 1
    except KafkaError as err:
        raise TopicError(f"cannot describe the cluster: {err}") from err


def _check(
    admin: Any,
    topic: str,
    max_token_lifetime: timedelta,
    connection: KafkaConnection | None,
    *,
    strict: bool,
    wait: float,
    everywhere: bool = False,
    settled: Callable[[_BrokerView], bool] | None = None,
) -> TopicInfo:
    def described(view: _BrokerView) -> bool:
        # Each broker that lists the topic must also describe its configuration (or refuse to).
        return (view.configs is not None or view.configs_denied) and (
            settled is None or settled(view)
        )

    listed = _await_topic(
        admin,
        topic,
        connection,
        wait=wait,
        role="sidecar",
        everywhere=everywhere,
        configs=True,
        settled=described,
    )
    replication = min(
        len(partition["replica_nodes"]) for view in listed for partition in view.partitions
    )
    info = TopicInfo(
        name=topic,
        partitions=max(len(view.partitions) for view in listed),
        retention_ms=None,
        replication_factor=replication,
        brokers=_brokers(admin),
    )
    # Every value, the brokers' defaults included (kafka-python's describe_configs shows only
    # the values set on the topic: a broker-wide retention or min.insync.replicas would be
    # missed). None where the broker denied DESCRIBE_CONFIGS.
    values = next((view.configs for view in listed if view.configs), None)
    if values:
        info = _checked_retention(topic, values, max_token_lifetime, info)
    return _checked_replication(info, connection, strict=strict)


@dataclass(frozen=True)
class _BrokerView:
    """What one broker says about the topic, from its own metadata."""

    node: int
    metadata_error: int
    partitions: tuple[Mapping[str, Any], ...] = ()
    """Empty while this broker does not list the topic."""
    configs: Mapping[str, Any] | None = None
    """Every configuration value; None when not asked, denied, or not known to it yet."""
    configs_denied: bool = False

    @property
    def listed(self) -> bool:
        """True when this broker lists the topic with its partitions, each with a leader."""
        return self.metadata_error == 0 and bool(self.partitions)

    def has(self, replicas: int, expected: Mapping[str, str]) -> bool:
        """True when every partition has ``replicas`` replicas and the configuration shows the
        ``expected`` values (or this principal may not read it)."""
        if any(len(p["replica_nodes"]) != replicas for p in self.partitions):
            return False
        if self.configs_denied:
            return True
        return self.configs is not None and all(
            self.configs.get(name) == value for name, value in expected.items()
        )


def _ask_brokers(admin: Any, topic: str, *, configs: bool) -> list[_BrokerView]:
    """Ask every live broker (those the cluster's metadata names) for its own metadata of
    ``topic`` and, with ``configs``, its own description of the topic's configuration.

    kafka-python's public calls pick the broker themselves and drop per-resource error codes,
    so this sends the two requests to each broker through the admin client's connection
    manager (kafka-python 3.0's ``_manager``). A broker that does not answer is left out: it
    serves no client either.
    """
    from kafka.admin import ConfigResource, ConfigResourceType
    from kafka.errors import KafkaError
    from kafka.protocol.metadata import MetadataRequest

    manager = admin._manager

    def metadata() -> Any:
        return MetadataRequest(
            topics=[MetadataRequest.MetadataRequestTopic(name=topic)],
            allow_auto_topic_creation=False,
        )

    async def ask() -> list[_BrokerView]:
        brokers = (await manager.send(metadata())).to_dict()["brokers"]
        views = []
        for broker in brokers:
            node = broker["node_id"]
            try:
                answer = (await manager.send(metadata(), node_id=node)).to_dict()
                described = None
                if configs:
                    request = admin._describe_configs_request(
                        [ConfigResource(ConfigResourceType.TOPIC, topic)]
                    )
                    described = (await manager.send(request, node_id=node)).to_dict()
            except KafkaError as err:
                logger.debug("broker %s did not answer about topic %s: %s", node, topic, err)
                continue
            views.append(_view(node, answer["topics"][0], described))
        return views

    try:
        views: list[_BrokerView] = manager.run(ask)
    except KafkaError as err:
        raise TopicError(f"cannot describe topic {topic!r}: {err}") from err
    if not views:
        raise TopicError(f"cannot describe topic {topic!r}: no broker answered")
    return views


def _view(
    node: int, metadata: Mapping[str, Any], described: Mapping[str, Any] | None
) -> _BrokerView:
    from kafka.errors import TopicAuthorizationFailedError

    partitions = tuple(metadata.get("partitions") or ())
    errors = [p for p in partitions if p.get("error_code", 0) != 0 or p.get("leader_id", -1) < 0]
    view = _BrokerView(
        node=node,
        metadata_error=int(metadata.get("error_code", 0)),
        partitions=() if errors else partitions,
    )
    if described is None:
        return view
    result = described["results"][0]
    code = int(result.get("error_code", 0))
    if code == TopicAuthorizationFailedError.errno:
        return replace(view, configs_denied=True)
    if code != 0:  # UNKNOWN_TOPIC_OR_PARTITION: this broker has not caught up yet
        return view
    return replace(view, configs={entry["name"]: entry["value"] for entry in result["configs"]})


def _await_topic(
    admin: Any,
    topic: str,
    connection: KafkaConnection | None,
    *,
    wait: float,
    role: str,
    everywhere: bool,
    configs: bool,
    settled: Callable[[_BrokerView], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> list[_BrokerView]:
    """The views of the brokers that list the topic, once one does (``everywhere``: once every
    live broker does) and each of them is ``settled``; rules 1-3."""
    from kafka.errors import TopicAuthorizationFailedError

    started = clock()
    while True:
        views = _ask_brokers(admin, topic, configs=configs)
        if any(view.metadata_error == TopicAuthorizationFailedError.errno for view in views):
            detail = authorization_detail(
                TopicAuthorizationFailedError(topic),
                connection,
                operation=f"DESCRIBE topic {topic!r}",
                role=role,
            )
            raise KafkaAccessError(f"cannot check the topic: {detail}", reason="not_authorized")
        listed = [view for view in views if view.listed]
        missing = [view.node for view in views if not view.listed]
        unsettled = [view.node for view in listed if settled is not None and not settled(view)]
        if listed and not unsettled and not (everywhere and missing):
            return listed
        waited = clock() - started
        if not listed and waited >= min(TOPIC_APPEAR_TIMEOUT, wait):
            raise TopicNotFoundError(
                f"topic {topic!r} does not exist (no broker lists it); create it with "
                "`jwt-revocation topic ensure`"
            )
        if waited >= wait:
            if missing:
                raise TopicNotFoundError(
                    f"topic {topic!r} is listed by broker(s) {_nodes(v.node for v in listed)} "
                    f"but not by {_nodes(missing)} after {wait:g} s: their metadata is behind "
                    "the controller's; check those brokers' logs"
                )
            raise TopicError(
                f"broker(s) {_nodes(unsettled)} do not describe topic {topic!r} with the "
                f"replicas and configuration it was given after {wait:g} s"
            )
        sleep(_ASK_AGAIN)


def _nodes(nodes: Iterable[int]) -> str:
    return ", ".join(map(str, nodes))


def _checked_replication(
    info: TopicInfo, connection: KafkaConnection | None, *, strict: bool
) -> TopicInfo:
    """Warn about (or, ``strict``, refuse) what could lose acknowledged revocations."""
    topic, risks = info.name, []
    if info.retention_ms is None:
        who = (connection or KafkaConnection()).principal
        risks.append(
            f"{who} may not read topic {topic!r}'s configuration (DESCRIBE_CONFIGS), so its "
            "retention and min.insync.replicas went unchecked; run `jwt-revocation topic check` "
            "with a principal that may"
        )
    if info.brokers > 1 and info.replication_factor < 2:
        risks.append(
            f"topic {topic!r} has replication factor {info.replication_factor} on a cluster of "
            f"{info.brokers} brokers: losing one broker loses acknowledged revocations; "
            "recreate it with 3 replicas and min.insync.replicas=2 (`jwt-revocation topic ensure`)"
        )
    elif info.brokers > 1 and info.min_insync_replicas == 1:
        risks.append(
            f"topic {topic!r} has min.insync.replicas=1 on a cluster of {info.brokers} brokers: "
            "an acks=all write is then acknowledged by the leader alone, and losing it loses the "
            "revocation; set min.insync.replicas=2"
        )
    if risks and strict:
        raise ReplicationTooLowError("; ".join(risks) + " (strict_replication)")
    for risk in risks:
        logger.warning("%s", risk)
    return replace(info, warnings=tuple(risks))


def _checked_retention(
    topic: str, values: Mapping[str, Any], max_token_lifetime: timedelta, info: TopicInfo
) -> TopicInfo:
    retention_ms = int(values.get("retention.ms") or -1)
    retention_bytes = int(values.get("retention.bytes") or -1)
    policy = values.get("cleanup.policy") or "delete"
    needed_ms = int(max_token_lifetime.total_seconds() * 1000)
    if "compact" in policy:
        raise RetentionTooShortError(
            f"topic {topic!r} has cleanup.policy={policy}: compaction keeps one event per user "
            "and would drop live revocations; use cleanup.policy=delete"
        )
    if retention_bytes != -1:
        raise RetentionTooShortError(
            f"topic {topic!r} has retention.bytes={retention_bytes}: size-based deletion can "
            "drop live revocations; set retention.bytes=-1 and bound the topic by time"
        )
    if retention_ms != -1 and retention_ms < needed_ms:
        raise RetentionTooShortError(
            f"topic {topic!r} keeps events for {retention_ms} ms, less than max_token_lifetime "
            f"({needed_ms} ms): a restarted sidecar would forget live revocations"
        )
    min_isr = values.get("min.insync.replicas")
    return replace(
        info,
        retention_ms=retention_ms,
        min_insync_replicas=None if min_isr is None else int(min_isr),
    )
