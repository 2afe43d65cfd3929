"""Guarantees under faults, on the real broker: crashes, staleness, a dying thread, a full state."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jwt_revocation.consumer import (
    SidecarStatus,
    SidecarUnavailableError,
    TokenRevokedError,
    render_metrics,
)
from jwt_revocation.producer import Published, RevocationPublisher
from jwt_revocation.shared import Event, PublishError
from tests.integration.conftest import (
    BOOTSTRAP,
    KEY,
    BrokerControl,
    SidecarFactory,
    issue,
    verifier_for,
)
from tests.support import FakeClock, wait_for


def test_every_acknowledged_event_survives_a_broker_crash(
    broker_control: BrokerControl, topic: str, make_sidecar: SidecarFactory
) -> None:
    sidecars = [make_sidecar(max_staleness=300) for _ in range(2)]
    acknowledged: list[Published] = []
    refused: list[PublishError] = []
    stop = threading.Event()

    def publish_forever() -> None:
        with RevocationPublisher(BOOTSTRAP, topic, issuer="crash", timeout=20) as publisher:
            i = 0
            while not stop.is_set():
                try:
                    acknowledged.append(
                        publisher.logout(
                            jti=f"crash-{i}", user_id=f"u{i % 13}", expires_at=time.time() + 900
                        )
                    )
                except PublishError as err:
                    refused.append(err)
                i += 1

    writer = threading.Thread(target=publish_forever, name="crash-writer")
    writer.start()
    try:
        wait_for(lambda: len(acknowledged) >= 200, timeout=30)
        broker_control.kill()
        killed_at = len(acknowledged)
        time.sleep(1.0)  # real downtime: the broker is gone for a while
        broker_control.start()
        wait_for(lambda: len(acknowledged) >= killed_at + 200, timeout=60)
    finally:
        stop.set()
        writer.join(timeout=60)
    assert not writer.is_alive()
    jtis = {p.event.jti for p in acknowledged}  # type: ignore[union-attr]
    for sidecar in sidecars:
        wait_for(lambda s=sidecar: jtis <= s.state.snapshot().jtis.keys(), timeout=60)  # type: ignore[misc]
        assert sidecar.status is SidecarStatus.CAUGHT_UP
    # A refused call is an explicit error, never a silent drop; each names its event.
    assert all("was not acknowledged" in str(err) for err in refused)


def test_a_stale_sidecar_fails_closed_and_recovers(
    broker_control: BrokerControl, make_sidecar: SidecarFactory, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(time.time())
    strict = make_sidecar(clock=clock, max_staleness=30)
    lenient = make_sidecar(clock=clock, max_staleness=30, on_stale="allow")
    token = issue("alice")
    assert verifier_for(strict).verify(token)["sub"] == "alice"

    broker_control.kill()
    clock.advance(31)
    wait_for(lambda: strict.status is SidecarStatus.STALE, timeout=20)
    with pytest.raises(SidecarUnavailableError) as caught:
        verifier_for(strict).verify(token)
    assert caught.value.reason == "stale"
    assert not strict.ready
    assert strict.stats().seconds_since_contact is not None
    with caplog.at_level(logging.WARNING, logger="jwt_revocation"):
        assert verifier_for(lenient).verify(token)["sub"] == "alice"
    assert "STALE revocation state accepted because on_stale=allow" in caplog.text

    broker_control.start()
    wait_for(lambda: strict.ready and lenient.ready, timeout=60)
    assert verifier_for(strict).verify(token)["sub"] == "alice"


def test_a_crashing_consumer_loop_restarts_and_loses_nothing(
    publisher: RevocationPublisher,
    make_sidecar: SidecarFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sidecar = make_sidecar(restart_backoff=0.05)
    real_apply = sidecar.state.apply
    crashes: list[str] = []

    def apply_once_broken(event: Any, now: float) -> bool:
        if not crashes:
            crashes.append(event.event_id)
            raise RuntimeError("injected failure in apply")
        return real_apply(event, now)

    sidecar.state.apply = apply_once_broken  # type: ignore[method-assign]
    token = issue("bob")
    with caplog.at_level(logging.ERROR, logger="jwt_revocation"):
        published = publisher.revoke_token(jwt.decode(token, KEY, algorithms=["HS256"]))
        wait_for(lambda: sidecar.applied_through(published.partition, published.offset))
    assert crashes == [published.event.event_id]
    stats = sidecar.stats()
    assert stats.restarts == 1
    assert stats.last_error == "RuntimeError: injected failure in apply"
    assert any(r.exc_info for r in caplog.records), "the crash is logged with its traceback"
    with pytest.raises(TokenRevokedError):
        verifier_for(sidecar).verify(token)
    wait_for(lambda: sidecar.status is SidecarStatus.CAUGHT_UP)


def test_a_consumer_that_keeps_crashing_fails_closed(
    publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    sidecar = make_sidecar(restart_backoff=0.01, max_restarts=2)

    def broken(event: Any, now: float) -> bool:
        raise RuntimeError("apply is broken for good")

    sidecar.state.apply = broken  # type: ignore[method-assign]
    publisher.password_changed(user_id="carol")
    wait_for(lambda: sidecar.status is SidecarStatus.FAILED)
    with pytest.raises(SidecarUnavailableError) as caught:
        verifier_for(sidecar).verify(issue("dave"))
    assert caught.value.reason == "failed"
    assert sidecar.stats().restarts == 3


def test_a_decoder_bug_is_counted_logged_with_its_traceback_and_the_record_never_skipped(
    publisher: RevocationPublisher,
    make_sidecar: SidecarFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sidecar = make_sidecar(restart_backoff=0.05)
    applier = sidecar._reader.applier
    real_decode = applier.decode
    attempts: list[int] = []

    def broken_twice_on_carol(value: bytes | None) -> Event:
        event = real_decode(value)
        if getattr(event, "user_id", None) == "carol" and len(attempts) < 2:
            attempts.append(1)
            raise RuntimeError("injected bug in the decoder")
        return event

    applier.decode = broken_twice_on_carol
    token = issue("carol", iat=time.time() - 5)
    with caplog.at_level(logging.ERROR, logger="jwt_revocation"):
        published = publisher.password_changed(user_id="carol")
        wait_for(lambda: sidecar.applied_through(published.partition, published.offset))

    stats = sidecar.stats()
    assert stats.failed == {"RuntimeError": 2}
    assert stats.skipped == {}  # never skipped: applied once the decoder worked
    assert stats.restarts == 2
    with pytest.raises(TokenRevokedError):
        verifier_for(sidecar).verify(token)
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert len(logged) == 2
    assert all(r.levelno == logging.ERROR for r in logged)
    place = f"partition={published.partition} offset={published.offset}: not skipped"
    assert place in caplog.text  # the traceback carries the note naming the record
    assert "injected bug in the decoder" in caplog.text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(render_metrics(sidecar).decode())
        for sample in family.samples
    }
    labels = (("error", "RuntimeError"), ("sidecar", sidecar.name))
    assert samples[("jwt_revocation_record_failures_total", labels)] == 2


def test_a_decoder_that_keeps_failing_fails_closed_rather_than_drop_the_record(
    publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    sidecar = make_sidecar(restart_backoff=0.01, max_restarts=2)

    def broken(value: bytes | None) -> Event:
        raise RuntimeError("the decoder is broken for good")

    sidecar._reader.applier.decode = broken
    publisher.password_changed(user_id="dora")
    wait_for(lambda: sidecar.status is SidecarStatus.FAILED)
    with pytest.raises(SidecarUnavailableError) as caught:
        verifier_for(sidecar).verify(issue("erin"))
    assert caught.value.reason == "failed"
    assert sidecar.stats().failed == {"RuntimeError": 3}
    assert sidecar.stats().skipped == {}


def test_a_full_sidecar_fails_closed_and_never_evicts(
    publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    clock = FakeClock(time.time())
    sidecar = make_sidecar(clock=clock, max_entries=5, max_clock_skew=10)
    short = [f"short-{i}" for i in range(5)]
    long = [f"long-{i}" for i in range(3)]
    for jti in short:
        publisher.logout(jti=jti, user_id="u", expires_at=clock() + 60)
    for jti in long:
        publisher.logout(jti=jti, user_id="u", expires_at=clock() + 3000)

    wait_for(lambda: sidecar.status is SidecarStatus.OVER_CAPACITY)
    assert sorted(sidecar.state.snapshot().jtis) == sorted(short)  # the first five, all kept
    with pytest.raises(SidecarUnavailableError) as caught:
        verifier_for(sidecar).verify(issue("someone"))
    assert caught.value.reason == "over_capacity"

    clock.advance(60 + 10 + 1)  # the short tokens expire: room for the rest
    wait_for(lambda: sorted(sidecar.state.snapshot().jtis) == sorted(long), timeout=20)
    wait_for(lambda: sidecar.status is SidecarStatus.CAUGHT_UP)


def test_no_token_or_key_reaches_the_logs(
    publisher: RevocationPublisher, make_sidecar: SidecarFactory, caplog: pytest.LogCaptureFixture
) -> None:
    secret_key = f"secret-{uuid.uuid4().hex}"
    # Each logger set explicitly: a CLI run earlier in this process (the unit tests call
    # `main()`) leaves the package's and kafka-python's loggers at the levels it chose.
    with (
        caplog.at_level(logging.DEBUG),
        caplog.at_level(logging.DEBUG, logger="jwt_revocation"),
        caplog.at_level(logging.DEBUG, logger="kafka"),
    ):
        sidecar = make_sidecar()
        verifier = verifier_for(sidecar)
        verifier_bad_key = type(verifier)(sidecar, key=secret_key, algorithms=["HS256"])
        token = issue("eve")
        published = publisher.revoke_token(jwt.decode(token, KEY, algorithms=["HS256"]))
        wait_for(lambda: sidecar.applied_through(published.partition, published.offset))
        messages = []
        for check in (verifier.verify, verifier_bad_key.verify):
            with pytest.raises(jwt.InvalidTokenError) as caught:
                check(token)
            messages.append(str(caught.value))
        logging.getLogger("probe").debug("probe %r %r", verifier, verifier_bad_key)
    text = caplog.text + "\n".join(messages)
    assert "probe RevocationVerifier" in text  # the capture saw the verifiers' reprs
    assert len(caplog.records) > 20  # and the library's and kafka-python's debug logs
    for secret in (token, KEY, secret_key, token.split(".")[2]):
        assert secret not in text
