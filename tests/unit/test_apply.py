"""RecordApplier: records decoded once into the state (and the mirror), skips, bugs, key checks,
capacity and delays; no broker."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pytest
from kafka import TopicPartition

from jwt_revocation.consumer import SidecarOptions
from jwt_revocation.consumer._apply import RecordApplier
from jwt_revocation.consumer._health import SidecarHealth
from jwt_revocation.consumer._mirror import MirrorFeed
from jwt_revocation.consumer._progress import ReplayProgress
from jwt_revocation.consumer._reader import TopicReader
from jwt_revocation.shared import Event, TokenRevoked, decode_event, encode_event
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


def _apply(
    applier: RecordApplier, records: list[FakeRecord], now: float, *, timed: bool = False
) -> int | None:
    """Decode, then apply: what the consumer thread does with one partition's records."""
    return applier.apply(0, applier.decode_records(0, records), now, timed=timed)


def _record(offset: int, jti: str, user: str = "alice", key: str | None = "alice") -> FakeRecord:
    value = encode_event(revoke_jti(jti, NOW + 600, user_id=user))
    return FakeRecord(offset, None if key is None else key.encode(), value)


def test_records_are_applied_in_order_and_the_position_moves_past_them() -> None:
    applier = _applier()

    stopped = _apply(applier, [_record(0, "a"), _record(1, "b")], NOW)

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
        _apply(applier, [FakeRecord(0, b"k", b"{not json"), _record(1, "b")], NOW)

    assert applier.counts.skipped == {"not_json": 1}
    assert applier.counts.applied == {"token_revoked": 1}
    assert applier.progress.position(0) == 2
    assert "partition=0 offset=0 reason=not_json" in caplog.text


def test_an_event_keyed_by_another_user_is_applied_and_counted() -> None:
    applier = _applier()

    _apply(applier, [_record(0, "a", key="mallory"), _record(1, "b", key=None)], NOW)

    assert applier.state.check("a", "alice", NOW - 1) == "token_revoked"
    assert applier.counts.anomalies == {"key_mismatch": 2}


def test_at_max_entries_an_adding_event_stops_the_partition_and_nothing_is_evicted() -> None:
    applier = _applier(max_entries=2)
    records = [_record(0, "a"), _record(1, "b"), _record(2, "c"), _record(3, "d")]

    stopped = _apply(applier, records, NOW)

    assert stopped == 2
    assert applier.progress.position(0) == 2
    assert len(applier.state) == 2
    assert applier.state.check("a", "alice", NOW - 1) == "token_revoked"
    assert applier.state.check("c", "alice", NOW - 1) is None


def test_a_full_state_still_applies_events_that_add_no_entry() -> None:
    applier = _applier(max_entries=1)
    _apply(applier, [FakeRecord(0, b"alice", encode_event(revoke_user("alice", NOW - 5)))], NOW)
    later = FakeRecord(1, b"alice", encode_event(revoke_user("alice", NOW)))

    assert _apply(applier, [later], NOW) is None
    assert applier.progress.position(0) == 2
    assert applier.state.check(None, "alice", NOW - 1) == "user_tokens_revoked"


def test_delays_are_counted_only_when_timed() -> None:
    applier = _applier()
    published = FakeRecord(0, b"alice", _record(0, "a").value, timestamp=int((NOW - 0.02) * 1000))

    _apply(applier, [published], NOW)
    assert applier.delays.cumulative()[-1][1] == 0
    _apply(
        applier, [FakeRecord(1, b"alice", published.value, published.timestamp)], NOW, timed=True
    )
    histogram = dict(applier.delays.cumulative())
    assert histogram[0.01] == 0
    assert histogram[0.025] == 1
    assert applier.delays.sum == pytest.approx(0.02, abs=0.001)


def test_an_unexpected_decoder_error_is_counted_and_raised_with_the_records_place() -> None:
    """A bug in decoding is not a bad record: nothing of the poll is applied or skipped."""

    def broken_on_b(value: bytes | None) -> Event:
        event = decode_event(value)
        if isinstance(event, TokenRevoked) and event.jti == "b":
            raise RuntimeError("a bug in the decoder")
        return event

    applier = RecordApplier("t", new_state(), ReplayProgress(), broken_on_b)
    applier.progress.start_at(0, 0, 100)

    with pytest.raises(RuntimeError, match="a bug in the decoder") as caught:
        applier.decode_records(0, [_record(0, "a"), _record(1, "b"), _record(2, "c")])

    assert applier.counts.failed == {"RuntimeError": 1}
    assert "topic=t partition=0 offset=1: not skipped" in "".join(caught.value.__notes__)
    assert applier.counts.skipped == {}
    assert applier.counts.applied == {}
    assert applier.progress.position(0) == 0  # the consumer restarts at the first record
    assert len(applier.state) == 0


class _Mirror:
    """A mirror that keeps what it is handed."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def resume_offsets(self, topic: str) -> dict[int, int]:
        return {}

    def write(
        self, topic: str, events: Sequence[Event], offsets: Mapping[int, int], now: float
    ) -> None:
        self.events.extend(events)

    def heartbeat(self, topic: str, now: float) -> None:
        pass


def test_with_a_mirror_each_record_is_decoded_once_and_both_get_its_event() -> None:
    decodes: list[bytes | None] = []

    def counting(value: bytes | None) -> Event:
        decodes.append(value)
        return decode_event(value)

    progress = ReplayProgress()
    for partition in (0, 1):
        progress.start_at(partition, 0, 100)
    state = new_state()
    applier = RecordApplier("t", state, progress, counting)
    mirror = _Mirror()
    feed = MirrorFeed(mirror, "t")
    feed.resume("test")
    reader = TopicReader(
        name="s",
        options=SidecarOptions(
            bootstrap_servers="127.0.0.1:1", topic="t", max_token_lifetime=3600, max_entries=1000
        ),
        state=state,
        progress=progress,
        health=SidecarHealth(max_staleness=30),
        applier=applier,
        clock=lambda: NOW,
        mirror=feed,
    )
    batch = {
        TopicPartition("t", 0): [
            _record(0, "a"),
            FakeRecord(1, b"k", b"{not json"),
            _record(2, "b"),
        ],
        TopicPartition("t", 1): [_record(0, "c"), _record(1, "d")],
    }

    reader._apply_batch(consumer=None, batch=batch)

    assert len(decodes) == 5  # one per record, not one for the mirror and one to apply
    assert sorted(e.jti for e in mirror.events) == ["a", "b", "c", "d"]  # type: ignore[union-attr]
    assert applier.counts.applied == {"token_revoked": 4}
    assert applier.counts.skipped == {"not_json": 1}
    assert feed.mirrored == 4
