"""How the command line reaches Kafka: every client it builds honours the command's ``--timeout``.

Every client connects as the ``JWT_REVOCATION_KAFKA_*`` settings say
(:meth:`KafkaConnection.from_settings`: TLS, client certificates, SASL), through the one builder
in ``jwt_revocation.shared``. kafka-python's clients bootstrap in their constructors and wait
30 s for an unreachable broker by default; each client built here bootstraps within its
timeout, and one that cannot is one :class:`~jwt_revocation.shared.KafkaAccessError` saying why
(unreachable, untrusted certificate, refused credentials...). A sidecar's start checks the topic
first (:func:`check_topic`, with the same bound and the ``strict_replication`` setting), so an
unreachable broker or a missing topic is one error within the timeout, not a consumer thread
that retries.

Commands whose work may outlast the time it takes to reach Kafka (``replay``, ``snapshot``:
they read the whole topic) spend at most :data:`REACH_WITHIN` of their ``--timeout`` on
reaching it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jwt_revocation.consumer import RevocationSidecar
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import KafkaConnection, RevocationSettings, TopicInfo, check_topic
from jwt_revocation.shared._connection import BOOTSTRAP_SHARE

REACH_WITHIN = 10.0
"""Seconds a one-shot command waits for an unreachable broker, when its timeout is longer."""


def client_options(timeout: float) -> dict[str, Any]:
    """kafka-python options that bound a client's bootstrap to ``timeout`` seconds (most of it:
    a failure's diagnosis takes the rest)."""
    return {"bootstrap_timeout_ms": max(1, int(timeout * 1000 * BOOTSTRAP_SHARE))}


def checked_topic(settings: RevocationSettings, *, reach: float) -> TopicInfo:
    """:func:`check_topic` as the settings say (connection, ``strict_replication``)."""
    return check_topic(
        settings.bootstrap_servers,
        settings.topic,
        max_token_lifetime=settings.max_token_lifetime,
        timeout=reach,
        connection=KafkaConnection.from_settings(settings),
        strict_replication=settings.strict_replication,
    )


def checked_sidecar(
    settings: RevocationSettings, *, reach: float, **overrides: Any
) -> RevocationSidecar:
    """A sidecar, not started, for a topic checked within ``reach`` seconds."""
    checked_topic(settings, reach=reach)
    return RevocationSidecar.from_settings(
        settings, verify_topic=False, consumer_config=client_options(reach), **overrides
    )


@contextmanager
def started_sidecar(
    settings: RevocationSettings, timeout: float, **overrides: Any
) -> Iterator[RevocationSidecar]:
    """A sidecar caught up within ``timeout`` seconds in all, stopped when the block ends."""
    deadline = time.monotonic() + timeout
    sidecar = checked_sidecar(
        settings, reach=min(timeout, REACH_WITHIN), name="jwt-revocation-cli", **overrides
    )
    try:
        sidecar.start(timeout=max(deadline - time.monotonic(), 0.1))
        yield sidecar
    finally:
        sidecar.stop()


def publisher(
    settings: RevocationSettings, *, reach: float, timeout: float | None = None, **overrides: Any
) -> RevocationPublisher:
    """A publisher that reaches Kafka within ``reach`` seconds; ``timeout`` bounds each publish
    (default ``JWT_REVOCATION_PUBLISH_TIMEOUT``)."""
    if timeout is not None:
        overrides["timeout"] = timeout
    if timeout != reach:  # else the publisher bounds its bootstrap by its timeout itself
        overrides["producer_config"] = client_options(reach)
    return RevocationPublisher.from_settings(settings, **overrides)
