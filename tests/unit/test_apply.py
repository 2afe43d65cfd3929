"""RecordApplier: records into the state, skips, key checks, capacity and delays, no broker."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from jwt_revocation.consumer._apply import RecordApplier
from jwt_revocation.consumer._progress import ReplayProgress
from jwt_revocation.shared import decode_event, encode_event
from tests.unit.test_state import NOW, new_state, revoke_jti, revoke_user


@dataclass(frozen=True)
class FakeRecord:
    """A plain record with the fields a ConsumerRecord has."""

    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = int(NOW * 1000)


def _applier(max_entries: int | None = None) -> RecordApplier:
    progress = ReplayProgress()
    progress.start_at(0, 0, 100)
    return RecordApplier("t", new_state(), progress, decode_event, max_entries=max_entries)


def _record(offset: int, jti: str, user: str = "alice", key: str | None = "alice") -> FakeRecord:
    value = encode_event(revoke_jti(jti, NOW + 600, user_id=user))
    return FakeRecord(offset, None if key is None else key.encode(), value)


def test_records_are_applied_in_order_and_the_position_moves_past_them() -> None:
    applier = _applier()

    stopped = applier.apply(0, [_record(0, "a"), _record(1, "b")], NOW)

    assert stopped is None
    assert applier.state.check("a", "alice", NOW - 1) == "token_revoked"
    assert applier.state.check("b", "alice", NOW - 1) == "token_revoked"
    assert applier.counts.applied == {"token_revoked": 2}
    assert applier.progress.position(0) == 2


def test_a_bad_record_is_skipped_counted_and_logged_and_the_rest_applied(
    caplog: pytest.LogCaptureFixture,
) -> None:
    applier = _applier()

    with caplog.at_level(logging.WARNING, logger="jwt_revocation"):
        applier.apply(0, [FakeRecord(0, b"k", b"{not json"), _record(1, "b")], NOW)

    assert applier.counts.skipped == {"not_json": 1}
    assert applier.counts.applied == {"token_revoked": 1}
    assert applier.progress.position(0) == 2
    assert "partition=0 offset=0 reason=not_json" in caplog.text


def test_an_event_keyed_by_another_user_is_applied_and_counted() -> None:
    applier = _applier()

    applier.apply(0, [_record(0, "a", key="mallory"), _record(1, "b", key=None)], NOW)

    assert applier.state.check("a", "alice", NOW - 1) == "token_revoked"
    assert applier.counts.anomalies == {"key_mismatch": 2}


def test_at_max_entries_an_adding_event_stops_the_partition_and_nothing_is_evicted() -> None:
    applier = _applier(max_entries=2)
    records = [_record(0, "a"), _record(1, "b"), _record(2, "c"), _record(3, "d")]

    stopped = applier.apply(0, records, NOW)

    assert stopped == 2
    assert applier.progress.position(0) == 2
    assert len(applier.state) == 2
    assert applier.state.check("a", "alice", NOW - 1) == "token_revoked"
    assert applier.state.check("c", "alice", NOW - 1) is None


def test_a_full_state_still_applies_events_that_add_no_entry() -> None:
    applier = _applier(max_entries=1)
    applier.apply(0, [FakeRecord(0, b"alice", encode_event(revoke_user("alice", NOW - 5)))], NOW)
    later = FakeRecord(1, b"alice", encode_event(revoke_user("alice", NOW)))

    assert applier.apply(0, [later], NOW) is None
    assert applier.progress.position(0) == 2
    assert applier.state.check(None, "alice", NOW - 1) == "user_tokens_revoked"


def test_delays_are_counted_only_when_timed() -> None:
    applier = _applier()
    published = FakeRecord(0, b"alice", _record(0, "a").value, timestamp=int((NOW - 0.02) * 1000))

    applier.apply(0, [published], NOW)
    assert applier.delays.cumulative()[-1][1] == 0
    applier.apply(
        0, [FakeRecord(1, b"alice", published.value, published.timestamp)], NOW, timed=True
    )
    histogram = dict(applier.delays.cumulative())
    assert histogram[0.01] == 0
    assert histogram[0.025] == 1
    assert applier.delays.sum == pytest.approx(0.02, abs=0.001)
