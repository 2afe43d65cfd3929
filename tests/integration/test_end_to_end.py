"""The whole path on the real broker: publish once, every sidecar rejects the token."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from jwt_revocation.consumer import (
    SidecarStatus,
    SidecarUnavailableError,
    TokenRevokedError,
    render_metrics,
)
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import (
    ConfigurationError,
    RetentionTooShortError,
    TopicNotFoundError,
    UserDeleted,
    encode_event,
    ensure_topic,
)
from tests.integration.conftest import (
    BOOTSTRAP,
    KEY,
    SidecarFactory,
    issue,
    revocation_reason,
    topic_name,
    verifier_for,
)
from tests.support import FakeClock, wait_for


def _publish(publisher: RevocationPublisher, kind: str, user: str, token: str) -> None:
    if kind == "token_revoked":
        publisher.revoke_token(jwt.decode(token, KEY, algorithms=["HS256"]))
    elif kind == "user_tokens_revoked":
        publisher.password_changed(user_id=user)
    else:
        publisher.user_deleted(user_id=user)


@pytest.mark.parametrize("kind", ["token_revoked", "user_tokens_revoked", "user_deleted"])
def test_one_publish_is_enforced_by_every_sidecar(
    kind: str, publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    sidecars = [make_sidecar() for _ in range(3)]
    victim, bystander = f"victim-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    token, other = issue(victim), issue(bystander)
    assert [revocation_reason(s, token) for s in sidecars] == [None, None, None]

    _publish(publisher, kind, victim, token)

    for sidecar in sidecars:
        assert wait_for(lambda s=sidecar: revocation_reason(s, token)) == kind  # type: ignore[misc]
        with pytest.raises(jwt.InvalidTokenError):
            verifier_for(sidecar).verify(token)
        assert revocation_reason(sidecar, other) is None
    if kind != "token_revoked":
        time.sleep(0.001)  # the new login is later than the cutoff, at sub-second precision
        fresh = issue(victim)
        assert [revocation_reason(s, fresh) for s in sidecars] == [None, None, None]


def test_a_logout_leaves_the_users_other_tokens_valid(
    publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    sidecar = make_sidecar()
    laptop, phone = issue("alice"), issue("alice")
    published = publisher.revoke_token(jwt.decode(laptop, KEY, algorithms=["HS256"]))
    wait_for(lambda: sidecar.applied_through(published.partition, published.offset))
    assert revocation_reason(sidecar, laptop) == "token_revoked"
    assert revocation_reason(sidecar, phone) is None


def test_an_integer_user_id_revokes_the_tokens_whose_sub_is_its_text(
    publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    sidecar = make_sidecar()
    number = uuid.uuid4().int % 10**12  # Django's user.id, say
    token, neighbour = issue(str(number)), issue(str(number) + "0")

    published = publisher.password_changed(user_id=number)

    assert published.event.user_id == str(number)  # type: ignore[union-attr]
    wait_for(lambda: sidecar.applied_through(published.partition, published.offset))
    assert revocation_reason(sidecar, token) == "user_tokens_revoked"
    assert revocation_reason(sidecar, neighbour) is None


def test_a_new_sidecar_rebuilds_the_same_state(
    publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    first = make_sidecar()
    now = time.time()
    last = None
    for i in range(60):
        user = f"user-{i % 7}"
        if i % 3 == 0:
            last = publisher.logout(jti=f"jti-{i}", user_id=user, expires_at=now + 600)
        elif i % 3 == 1:
            last = publisher.password_changed(user_id=user, at=now - 100 + i)
        else:
            last = publisher.user_deleted(user_id=user, at=now - 200 + i)
    assert last is not None
    wait_for(lambda: first.applied_through(last.partition, last.offset))
    before = first.state.snapshot()
    first.stop()

    second = make_sidecar()
    assert second.state.snapshot() == before
    assert len(before.jtis) == 20
    assert sum(second.stats().applied.values()) == 60


def test_entries_disappear_when_they_no_longer_matter(
    publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    clock = FakeClock(time.time())
    sidecar = make_sidecar(clock=clock, max_clock_skew=30, sweep_interval=0.1)
    publisher.logout(jti="short", user_id="u1", expires_at=clock() + 60)
    publisher.logout(jti="long", user_id="u2", expires_at=clock() + 3000)
    last = publisher.password_changed(user_id="u3", at=clock())
    wait_for(
        lambda: sidecar.applied_through(last.partition, last.offset) and len(sidecar.state) == 3
    )

    clock.advance(60 + 30 + 1)  # past the short token's exp and the skew allowance
    wait_for(lambda: len(sidecar.state) == 2)
    assert "short" not in sidecar.state.snapshot().jtis

    clock.advance(3600)  # past u3's cutoff + max_token_lifetime + skew, and the long token
    wait_for(lambda: len(sidecar.state) == 0)


@contextmanager
def _no_sockets_from_this_thread() -> Iterator[list[str]]:
    """Record every socket operation this thread attempts; other threads are untouched."""
    me = threading.get_ident()
    calls: list[str] = []
    patched: dict[tuple[Any, str], Any] = {}

    def guard(owner: Any, name: str) -> None:
        original = getattr(owner, name)
        patched[(owner, name)] = original

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == me:
                calls.append(name)
                raise AssertionError(f"socket call {name} on the verify path")
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)

    for name in ("__init__", "connect", "connect_ex", "send", "sendall", "sendto", "recv"):
        guard(socket.socket, name)
    for name in ("create_connection", "getaddrinfo"):
        guard(socket, name)
    try:
        yield calls
    finally:
        for (owner, name), original in patched.items():
            setattr(owner, name, original)


def test_the_socket_guard_catches_a_network_call() -> None:
    with _no_sockets_from_this_thread() as calls, pytest.raises(AssertionError):
        socket.create_connection(("127.0.0.1", 9092), timeout=1)
    assert calls == ["create_connection"]


def test_verify_opens_no_socket(
    publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    sidecar = make_sidecar()
    verifier = verifier_for(sidecar)
    revoked, valid = issue("mallory"), issue("trent")
    published = publisher.revoke_token(jwt.decode(revoked, KEY, algorithms=["HS256"]))
    wait_for(lambda: sidecar.applied_through(published.partition, published.offset))
    outcomes: list[str] = []
    with _no_sockets_from_this_thread() as calls:
        for _ in range(200):
            verifier.verify(valid)
            try:
                verifier.verify(revoked)
            except TokenRevokedError as err:
                outcomes.append(err.reason)
    assert calls == []
    assert outcomes == ["token_revoked"] * 200


def test_verify_fails_closed_until_caught_up(make_sidecar: SidecarFactory) -> None:
    sidecar = make_sidecar(start=False)
    verifier = verifier_for(sidecar)
    with pytest.raises(SidecarUnavailableError) as caught:
        verifier.verify(issue("alice"))
    assert caught.value.reason == "not_started"
    assert not isinstance(caught.value, jwt.InvalidTokenError)
    sidecar.start()
    assert verifier.verify(issue("alice"))["sub"] == "alice"
    sidecar.stop()
    with pytest.raises(SidecarUnavailableError) as caught:
        verifier.verify(issue("alice"))
    assert caught.value.reason == "stopped"
    assert sidecar.status is SidecarStatus.STOPPED


def test_start_refuses_a_missing_topic(make_sidecar: SidecarFactory) -> None:
    with pytest.raises(TopicNotFoundError):
        make_sidecar(topic=topic_name("missing"))


def test_start_refuses_a_topic_that_forgets_too_early(make_sidecar: SidecarFactory) -> None:
    short = topic_name("short")
    ensure_topic(
        BOOTSTRAP, short, max_token_lifetime=timedelta(minutes=1), retention_margin=timedelta(0)
    )
    with pytest.raises(RetentionTooShortError, match="less than max_token_lifetime"):
        make_sidecar(topic=short)  # the fixture's sidecars expect one hour of tokens


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b"\x00\xff\xfe random bytes", "not_json"),
        (b"{not json", "not_json"),
        (b'{"type": "token_revoked", "jti": 3}', "invalid"),
        (b'{"type": "session_paused", "user_id": "u"}', "unknown_type"),
        (b"x" * (64 * 1024 + 1), "oversized"),
    ],
)
def test_poison_records_are_skipped_and_later_events_applied(
    value: bytes,
    kind: str,
    topic: str,
    publisher: RevocationPublisher,
    make_sidecar: SidecarFactory,
) -> None:
    raw = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    try:
        raw.send(topic, key=b"victim", value=value, partition=0).get(timeout=10)
    finally:
        raw.close()
    sidecar = make_sidecar()
    assert sidecar.stats().skipped == {kind: 1}
    token = issue("victim")
    published = publisher.revoke_token(jwt.decode(token, KEY, algorithms=["HS256"]))
    wait_for(lambda: sidecar.applied_through(published.partition, published.offset))
    assert revocation_reason(sidecar, token) == "token_revoked"
    assert sidecar.status is SidecarStatus.CAUGHT_UP


def test_an_event_without_the_user_key_is_applied_and_counted(
    topic: str, make_sidecar: SidecarFactory
) -> None:
    sidecar = make_sidecar()
    series = ("jwt_revocation_event_anomalies_total", (("kind", "key_mismatch"),))

    def anomalies() -> float:
        return {
            (s.name, tuple((k, v) for k, v in sorted(s.labels.items()) if k != "sidecar")): s.value
            for family in text_string_to_metric_families(render_metrics(sidecar).decode())
            for s in family.samples
        }[series]

    assert anomalies() == 0.0  # exported before the first, so increase() sees the first
    event = UserDeleted(
        issuer="raw", occurred_at=datetime.now(UTC), user_id="keyless", at=datetime.now(UTC)
    )
    raw = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    try:
        meta = raw.send(topic, value=encode_event(event)).get(timeout=10)
    finally:
        raw.close()
    wait_for(lambda: sidecar.applied_through(meta.partition, meta.offset))
    assert sidecar.stats().anomalies == {"key_mismatch": 1}
    assert anomalies() == 1.0
    assert sidecar.state.check(None, "keyless", 0.0) == "user_deleted"


def test_a_publisher_that_lingers_publishes_and_sidecars_apply(
    topic: str, make_sidecar: SidecarFactory
) -> None:
    sidecar = make_sidecar()
    token = issue("lingering")
    config = {"linger_ms": 20, "request_timeout_ms": 30_000}

    with RevocationPublisher(BOOTSTRAP, topic, issuer="tests", producer_config=config) as pub:
        pub.revoke_token(jwt.decode(token, KEY, algorithms=["HS256"]))

    assert wait_for(lambda: revocation_reason(sidecar, token)) == "token_revoked"


def test_an_impossible_producer_config_is_a_configuration_error(topic: str) -> None:
    config = {"linger_ms": 20, "request_timeout_ms": 1000, "delivery_timeout_ms": 500}

    with pytest.raises(ConfigurationError, match="delivery_timeout_ms"):
        RevocationPublisher(BOOTSTRAP, topic, issuer="tests", producer_config=config)
