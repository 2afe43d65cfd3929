"""SidecarHealth: the status, readiness and their fast path, with a fake clock and no broker."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jwt_revocation.consumer import SidecarStatus, SidecarUnavailableError
from jwt_revocation.consumer._health import SidecarHealth
from tests.support import FakeClock


def _health(clock: FakeClock, **kwargs: object) -> SidecarHealth:
    return SidecarHealth(max_staleness=30.0, clock=clock, label="name=t topic=t", **kwargs)  # type: ignore[arg-type]


def _caught_up(clock: FakeClock) -> SidecarHealth:
    health = _health(clock)
    health.start()
    health.touch()
    health.caught_up()
    return health


def test_a_new_health_is_not_started_and_refuses() -> None:
    health = _health(FakeClock())

    assert health.status() is SidecarStatus.NEW
    with pytest.raises(SidecarUnavailableError) as caught:
        health.ensure_usable()
    assert caught.value.reason == "not_started"


def test_loading_says_how_far_the_replay_is() -> None:
    health = _health(FakeClock(), loading_detail=lambda: "behind by {0: 7}")
    health.start()
    health.touch()

    assert health.status() is SidecarStatus.LOADING
    with pytest.raises(SidecarUnavailableError, match=r"\(loading\): behind by \{0: 7\}"):
        health.ensure_usable()


def test_caught_up_and_in_contact_is_usable() -> None:
    health = _caught_up(FakeClock())

    assert health.status() is SidecarStatus.CAUGHT_UP
    health.ensure_usable()


def test_contact_older_than_max_staleness_is_stale_and_fails_closed() -> None:
    clock = FakeClock()
    health = _caught_up(clock)
    clock.advance(30)

    health.ensure_usable()  # exactly max_staleness is still fresh
    clock.advance(0.001)
    assert health.status() is SidecarStatus.STALE
    with pytest.raises(SidecarUnavailableError) as caught:
        health.ensure_usable()
    assert caught.value.reason == "stale"
    assert "no contact with the broker for 30.001 s" in str(caught.value)
    health.touch()
    assert health.status() is SidecarStatus.CAUGHT_UP


def test_stale_is_accepted_and_warned_about_under_on_stale_allow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    health = _health(clock, on_stale="allow")
    health.start()
    health.touch()
    health.caught_up()
    clock.advance(31)

    with caplog.at_level(logging.WARNING, logger="jwt_revocation"):
        health.ensure_usable()
        health.ensure_usable()
    assert health.status() is SidecarStatus.STALE
    warnings = [r for r in caplog.records if "STALE revocation state accepted" in r.message]
    assert len(warnings) == 1, "warned once per interval, not once per request"


def test_over_capacity_fails_closed_until_room_is_made(caplog: pytest.LogCaptureFixture) -> None:
    health = _health(FakeClock(), capacity_detail=lambda: "10 live entries reached max_entries=10")
    health.start()
    health.touch()
    health.caught_up()

    with caplog.at_level(logging.ERROR, logger="jwt_revocation"):
        health.full(10, 10)
    assert "OVER CAPACITY" in caplog.text
    assert health.status() is SidecarStatus.OVER_CAPACITY
    with pytest.raises(SidecarUnavailableError, match="max_entries=10") as caught:
        health.ensure_usable()
    assert caught.value.reason == "over_capacity"
    health.room(9, 10)
    health.ensure_usable()


def test_over_capacity_while_loading_reports_loading() -> None:
    health = _health(FakeClock())
    health.start()
    health.full(10, 10)

    assert health.status() is SidecarStatus.LOADING
    health.room(5, 10)
    health.caught_up()
    health.touch()
    assert health.status() is SidecarStatus.CAUGHT_UP


def test_a_crash_degrades_until_the_broker_answers_again() -> None:
    health = _caught_up(FakeClock())
    health.crashed("RuntimeError: boom")

    assert health.status() is SidecarStatus.DEGRADED
    health.ensure_usable()  # degraded still decides
    assert (health.restarts, health.last_error) == (1, "RuntimeError: boom")
    health.touch()
    assert health.status() is SidecarStatus.CAUGHT_UP


def test_failed_and_stopped_are_final() -> None:
    health = _caught_up(FakeClock())
    health.fail("topic 'x' was deleted")

    assert health.status() is SidecarStatus.FAILED
    with pytest.raises(SidecarUnavailableError, match="was deleted") as caught:
        health.ensure_usable()
    assert caught.value.reason == "failed"
    health.stop()
    health.fail("later error")
    assert health.status() is SidecarStatus.STOPPED
    health.touch()
    health.caught_up()
    assert health.status() is SidecarStatus.STOPPED


_PHASES = [
    SidecarStatus.NEW,
    SidecarStatus.LOADING,
    SidecarStatus.CAUGHT_UP,
    SidecarStatus.FAILED,
    SidecarStatus.STOPPED,
]


@given(
    phase=st.sampled_from(_PHASES),
    over_capacity=st.booleans(),
    recovering=st.booleans(),
    contact_age=st.none() | st.floats(min_value=0, max_value=100),
    on_stale=st.sampled_from(["reject", "allow"]),
)
def test_readiness_and_status_agree_on_every_combination(
    phase: SidecarStatus,
    over_capacity: bool,
    recovering: bool,
    contact_age: float | None,
    on_stale: str,
) -> None:
    clock = FakeClock()
    health = _health(clock, on_stale=on_stale)
    health.phase = phase
    health.over_capacity = over_capacity
    health.recovering = recovering
    health.last_contact = None if contact_age is None else clock.now - contact_age

    status = health.status()
    usable = {SidecarStatus.CAUGHT_UP, SidecarStatus.DEGRADED}
    if on_stale == "allow":
        usable.add(SidecarStatus.STALE)
    if status in usable:
        health.ensure_usable()
    else:
        with pytest.raises(SidecarUnavailableError):
            health.ensure_usable()


def test_an_outage_says_since_when_and_how_often_until_the_broker_answers() -> None:
    clock = FakeClock(1_800_000_000.0)  # 2027-01-15T08:00:00Z
    health = _caught_up(clock)
    health.unreachable("KafkaAccessError: cannot reach Kafka", retry_every=30.0)
    clock.advance(31)
    health.unreachable("KafkaAccessError: cannot reach Kafka", retry_every=30.0)

    status = health.status()
    assert status is SidecarStatus.STALE
    outage = "brokers unreachable since 2027-01-15T08:00:00+00:00, retrying every 30 s"
    assert health.describe(status).endswith(f"; {outage}")
    with pytest.raises(SidecarUnavailableError, match="retrying every 30 s") as caught:
        health.ensure_usable()
    assert caught.value.reason == "stale"
    assert health.restarts == 2

    health.touch()
    assert health.status() is SidecarStatus.CAUGHT_UP
    assert "unreachable" not in health.describe(health.status())


def test_an_outage_while_loading_still_fails_closed_and_says_why() -> None:
    health = _health(FakeClock(), loading_detail=lambda: "replaying 0 of 3 partitions")
    health.start()
    health.unreachable("KafkaTimeoutError: Unable to bootstrap", retry_every=0.5)

    with pytest.raises(SidecarUnavailableError) as caught:
        health.ensure_usable()
    assert caught.value.reason == "loading"
    assert "replaying 0 of 3 partitions; brokers unreachable since" in str(caught.value)
