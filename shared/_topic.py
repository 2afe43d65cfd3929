"""The revocation topic: create it with a safe retention, and check an existing one.

A sidecar rebuilds its state by replaying ``max_token_lifetime`` of events. A topic that keeps
less than that, deletes by size, or compacts by key (the key is the user id: compaction would
keep one event per user and drop older logouts) would make a rebuilt sidecar forget live
revocations, so :func:`check_topic` refuses such a topic.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from ._duration import DurationLike, parse_duration
from ._errors import RetentionTooShortError, TopicError, TopicNotFoundError

logger = logging.getLogger(__name__)

DEFAULT_RETENTION_MARGIN = timedelta(days=1)


@dataclass(frozen=True)
class TopicInfo:
    """What a sidecar needs to know about the revocation topic."""

    name: str
    partitions: int
    retention_ms: int
    """``-1`` means events are kept forever."""


def _admin(bootstrap_servers: str, timeout: float) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            client_id="jwt-revocation-admin",
            request_timeout_ms=int(timeout * 1000),
            # The client bootstraps in its constructor: without this it waits 30 s.
            bootstrap_timeout_ms=int(timeout * 1000),
        )
    except KafkaError as err:
        raise TopicError(
            f"cannot reach Kafka at {bootstrap_servers} within {timeout:g} s: {err}"
        ) from err


def ensure_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    max_token_lifetime: DurationLike,
    partitions: int = 6,
    retention_margin: DurationLike = DEFAULT_RETENTION_MARGIN,
    timeout: float = 10.0,
) -> TopicInfo:
    """Create the topic if it is missing, then check it as a sidecar would; return what it is.

    Durations are a ``timedelta``, seconds, or text such as ``1h`` (see :func:`parse_duration`).
    """
    max_token_lifetime = parse_duration(max_token_lifetime, name="max_token_lifetime")
    retention = max_token_lifetime + parse_duration(retention_margin, name="retention_margin")
    admin = _admin(bootstrap_servers, timeout)
    try:
        try:
            admin.create_topics(
                [
                    NewTopic(
                        topic,
                        partitions,
                        1 if _single_broker(admin) else 3,
                        topic_configs={
                            "retention.ms": str(int(retention.total_seconds() * 1000)),
                            "retention.bytes": "-1",
                            "cleanup.policy": "delete",
                            "message.timestamp.type": "CreateTime",
                        },
                    )
                ]
            )
            logger.info(
                "created topic topic=%s partitions=%d retention_s=%d",
                topic,
                partitions,
                retention.total_seconds(),
            )
        except TopicAlreadyExistsError:
            logger.info("topic exists topic=%s", topic)
        except KafkaError as err:
            raise TopicError(f"cannot create topic {topic!r}: {err}") from err
        # A topic just created can take a moment to appear in the cluster's metadata.
        deadline = time.monotonic() + timeout
        while True:
            try:
                return _check(admin, topic, max_token_lifetime)
            except TopicNotFoundError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        admin.close()


def check_topic(
    bootstrap_servers: str, topic: str, *, max_token_lifetime: DurationLike, timeout: float = 10.0
) -> TopicInfo:
    """Raise unless the topic exists and keeps every event for at least ``max_token_lifetime``."""
    max_token_lifetime = parse_duration(max_token_lifetime, name="max_token_lifetime")
    admin = _admin(bootstrap_servers, timeout)
    try:
        return _check(admin, topic, max_token_lifetime)
    finally:
        admin.close()


def _single_broker(admin: KafkaAdminClient) -> bool:
    return len(admin.describe_cluster().get("brokers", [])) < 3


def _check(admin: KafkaAdminClient, topic: str, max_token_lifetime: timedelta) -> TopicInfo:
    try:
        described = admin.describe_topics([topic])
    except KafkaError as err:
        raise TopicError(f"cannot describe topic {topic!r}: {err}") from err
    if not described or described[0].get("error_code", 0) != 0 or not described[0]["partitions"]:
        raise TopicNotFoundError(
            f"topic {topic!r} does not exist; create it with `jwt-revocation topic ensure`"
        )
    partitions = len(described[0]["partitions"])
    try:
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    except KafkaError as err:
        raise TopicError(f"cannot read the configuration of topic {topic!r}: {err}") from err
    values = {name: entry["value"] for name, entry in configs["topic"][topic].items()}
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
    return TopicInfo(name=topic, partitions=partitions, retention_ms=retention_ms)
