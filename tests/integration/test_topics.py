"""A topic that does not exist is one clear error, at once, for every client that needs it.

Publishers, the sidecar, ``jwt-revocation publish`` and ``jwt-revocation relay`` each get a
``TopicNotFoundError`` (or its message, for a command) after ``TOPIC_APPEAR_TIMEOUT``, long
before their own timeouts; a topic deleted under a running publisher is a non-retriable
``PublishError`` that names it. (The three-node cluster's tests cover a topic that some
brokers do not list yet: tests/integration/secured/test_cluster.py.)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

from jwt_revocation.consumer import RevocationSidecar
from jwt_revocation.producer import AsyncRevocationPublisher, RevocationPublisher
from jwt_revocation.shared import PublishError, TopicNotFoundError, ensure_topic
from jwt_revocation.shared._topic import wait_for_topic
from tests.integration.conftest import BOOTSTRAP, LIFETIME, topic_name
from tests.integration.outbox.conftest import relay_process

PATIENT = 30.0
"""The timeouts given below: a missing topic must be reported well before them."""


@pytest.fixture
def missing() -> str:
    return topic_name("absent")


def _says_missing(text: str, topic: str) -> bool:
    return f"topic {topic!r} does not exist" in text and "jwt-revocation topic ensure" in text


def test_publishers_and_a_sidecar_on_a_missing_topic_get_a_clear_error_at_once(
    missing: str,
) -> None:
    def sidecar() -> None:
        RevocationSidecar(BOOTSTRAP, missing, max_token_lifetime=LIFETIME).start(timeout=PATIENT)

    async def build_async() -> None:
        AsyncRevocationPublisher(BOOTSTRAP, missing, issuer="tests", timeout=PATIENT)

    for build in (
        lambda: RevocationPublisher(BOOTSTRAP, missing, issuer="tests", timeout=PATIENT),
        lambda: asyncio.run(build_async()),
        sidecar,
        lambda: wait_for_topic(BOOTSTRAP, missing, timeout=PATIENT),
    ):
        started = time.monotonic()
        with pytest.raises(TopicNotFoundError) as refused:
            build()
        assert time.monotonic() - started < PATIENT / 2, "it waited for its whole timeout"
        assert _says_missing(str(refused.value), missing)


def test_the_publish_command_on_a_missing_topic_says_so(missing: str) -> None:
    command = ["--topic", missing, "publish", "password-change", "--user", "alice"]
    started = time.monotonic()
    published = subprocess.run(
        [sys.executable, "-m", "jwt_revocation.cli", *command, "--timeout", str(PATIENT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "JWT_REVOCATION_BOOTSTRAP_SERVERS": BOOTSTRAP},
    )
    assert time.monotonic() - started < PATIENT / 2, "it waited for its whole timeout"
    assert published.returncode == 2, published.stderr
    assert _says_missing(published.stderr, missing)
    assert "may still be delivered" not in published.stderr


def test_the_relay_command_on_a_missing_topic_stops_with_the_reason(
    missing: str, tmp_path: Path
) -> None:
    relay = relay_process(f"sqlite:///{tmp_path / 'auth.db'}", missing)
    _, stderr = relay.communicate(timeout=120)

    assert relay.returncode == 2
    assert _says_missing(stderr, missing)


def test_a_topic_deleted_under_a_publisher_is_a_non_retriable_error_naming_it() -> None:
    topic = topic_name("deleted")
    ensure_topic(BOOTSTRAP, topic, max_token_lifetime=LIFETIME, partitions=1)
    with RevocationPublisher(BOOTSTRAP, topic, issuer="tests", timeout=2) as publisher:
        publisher.password_changed(user_id="before")
        admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        try:
            admin.delete_topics([topic], timeout_ms=30_000)
        finally:
            admin.close()
        # The first publish may go out on the partitions the producer still knew (and expire);
        # once its metadata has dropped the topic, the error says what is wrong.
        errors: list[PublishError] = []
        for attempt in range(3):
            with pytest.raises(PublishError) as failed:
                publisher.password_changed(user_id=f"after-{attempt}")
            errors.append(failed.value)
            if not failed.value.retriable:
                break
    last = errors[-1]
    assert last.retriable is False
    assert _says_missing(str(last), topic)
    assert "was not published" in str(last)
