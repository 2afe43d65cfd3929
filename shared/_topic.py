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
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError, TopicAuthorizationFailedError

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
    broker's). An existing topic is only checked. Durations are a ``timedelta``, seconds, or
    text such as ``1h`` (see :func:`parse_duration`).
    """
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
        except TopicAlreadyExistsError:
            logger.info("topic exists topic=%s", topic)
        except TopicAuthorizationFailedError as err:
            detail = authorization_detail(
                err, connection, operation=f"CREATE topic {topic!r}", role="topic admin"
            )
            raise KafkaAccessError(f"cannot create: {detail}", reason="not_authorized") from err
        except KafkaError as err:
            raise TopicError(f"cannot create topic {topic!r}: {err}") from err
        # A topic just created can take a moment to appear in the cluster's metadata.
        deadline = time.monotonic() + timeout
        while True:
            try:
                return _check(
                    admin, topic, max_token_lifetime, connection, strict=strict_replication
                )
            except TopicNotFoundError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
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
) -> TopicInfo:
    """Raise unless the topic exists and keeps every event for at least ``max_token_lifetime``;
    warn (or, ``strict_replication``, raise) when it could lose acknowledged revocations."""
    max_token_lifetime = parse_duration(max_token_lifetime, name="max_token_lifetime")
    admin = _admin(bootstrap_servers, timeout, connection)
    try:
        return _check(admin, topic, max_token_lifetime, connection, strict=strict_replication)
    finally:
        admin.close()


def _brokers(admin: Any) -> int:
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
) -> TopicInfo:
    try:
        described = admin.describe_topics([topic])
    except KafkaError as err:
        raise TopicError(f"cannot describe topic {topic!r}: {err}") from err
    if described and described[0].get("error_code") == TopicAuthorizationFailedError.errno:
        detail = authorization_detail(
            TopicAuthorizationFailedError(topic),
            connection,
            operation=f"DESCRIBE topic {topic!r}",
            role="sidecar",
        )
        raise KafkaAccessError(f"cannot check the topic: {detail}", reason="not_authorized")
    if not described or described[0].get("error_code", 0) != 0 or not described[0]["partitions"]:
        raise TopicNotFoundError(
            f"topic {topic!r} does not exist; create it with `jwt-revocation topic ensure`"
        )
    partitions = described[0]["partitions"]
    replication = min(len(p["replica_nodes"]) for p in partitions)
    try:
        # Every value, the brokers' defaults included (kafka-python's default shows only the
        # values set on the topic: a broker-wide retention or min.insync.replicas would be missed).
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
        )
    except KafkaError as err:
        raise TopicError(f"cannot read the configuration of topic {topic!r}: {err}") from err
    # A topic always has a configuration: kafka-python answers none where the broker denied
    # DESCRIBE_CONFIGS.
    values = {name: entry["value"] for name, entry in configs["topic"][topic].items()}
    info = TopicInfo(
        name=topic,
        partitions=len(partitions),
        retention_ms=None,
        replication_factor=replication,
        brokers=_brokers(admin),
    )
    if values:
        info = _checked_retention(topic, values, max_token_lifetime, info)
    return _checked_replication(info, connection, strict=strict)


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
    topic: str, values: dict[str, Any], max_token_lifetime: timedelta, info: TopicInfo
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
