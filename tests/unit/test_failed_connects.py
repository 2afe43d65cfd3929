"""A client that cannot connect leaves no thread behind (a loopback port where nothing listens).

kafka-python's consumer and admin client start an IO thread before they bootstrap and kept it
when the bootstrap failed: a sidecar restarting against a dead broker gathered one idle thread
per attempt.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Literal

import pytest

from jwt_revocation.consumer import RevocationSidecar
from jwt_revocation.shared import KafkaAccessError, SidecarUnavailableError
from jwt_revocation.shared._connection import client_config, open_client

SLACK = 2
"""Threads that may come and go on their own (a logging or garbage-collection helper)."""


@pytest.fixture
def dead_broker() -> str:
    """``host:port`` of a loopback port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_50_failed_connects_leave_the_thread_count_where_it_was(dead_broker: str) -> None:
    kinds: tuple[Literal["producer", "consumer", "admin"], ...] = ("producer", "consumer", "admin")
    before = threading.active_count()
    for attempt in range(50):
        kind = kinds[attempt % len(kinds)]
        config = client_config(
            kind,
            dead_broker,
            client_id=f"dead-{attempt}",
            timeout=0.1,
            defaults={"fetch_max_wait_ms": 10, "request_timeout_ms": 100},
        )
        with pytest.raises(KafkaAccessError) as failed:
            open_client(kind, config, None, timeout=0.1)
        assert failed.value.reason == "unreachable"
    assert abs(threading.active_count() - before) <= SLACK, [t.name for t in threading.enumerate()]


def test_a_sidecar_restarting_against_a_dead_broker_gathers_no_threads(dead_broker: str) -> None:
    before = threading.active_count()
    sidecar = RevocationSidecar(
        dead_broker,
        "nowhere",
        max_token_lifetime=3600,
        verify_topic=False,
        max_restarts=1,  # an outage never uses it up: the starts go on
        restart_backoff=0.001,  # doubling: 13 starts in about 4 s
        consumer_config={"bootstrap_timeout_ms": 50},
    )
    with pytest.raises(SidecarUnavailableError) as failed:
        sidecar.start(timeout=1)  # no broker answers: still loading in the background
    assert failed.value.reason == "loading"
    deadline = time.monotonic() + 60
    while sidecar.stats().restarts < 13 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sidecar.stats().restarts >= 13
    assert sidecar.status.value == "loading"  # fails closed, and never gives up
    sidecar.stop()
    assert abs(threading.active_count() - before) <= SLACK, [t.name for t in threading.enumerate()]
