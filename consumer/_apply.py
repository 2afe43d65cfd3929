"""Applying polled records to the state: decode once, capacity, key check, counts and delays.

:class:`RecordApplier` is what the sidecar's consumer thread does with each partition's records
of a poll, and what ``jwt-revocation replay`` does through the sidecar. It needs no broker: it
takes anything shaped like a Kafka record (:class:`Record`), so tests feed it plain objects.

Rules (the sidecar's contract, rules 3, 5 and 6):

- Each record is decoded once, by :meth:`RecordApplier.decode_records`, before the state's lock
  is taken; the mirror (``_mirror``) and :meth:`RecordApplier.apply` both read that one result,
  so a signed SET's signature is checked once per record, mirror or not.
- Records are applied in offset order; the partition's position moves past each record applied
  or skipped, under the state's lock the caller holds.
- A record that is not a valid event (the decoder raised :class:`RecordError`) is skipped,
  counted by reason and logged with partition and offset (a forged or unsigned SET at ERROR).
- Any other exception from the decoder is a bug, not a bad record: it is counted in
  ``counts.failed`` by its type (the ``jwt_revocation_record_failures`` metric), noted with
  the record's topic, partition and offset, and raised before anything of the poll is mirrored
  or applied. The record is NOT skipped: the consumer thread logs the error at ERROR with its
  traceback and restarts at the applied offsets, so it meets the record again. While that
  repeats the status is ``degraded``; after ``max_restarts`` consecutive failures the sidecar
  is ``failed`` and verification fails closed. A bug never silently drops a revocation; the
  price is that a record which trips one stops every sidecar until the bug is fixed.
- An event whose Kafka key is not its :func:`~jwt_revocation.shared._events.record_key` (the user id, or
  ``*`` for ``all_tokens_revoked``) is applied and counted as ``key_mismatch`` (the metric
  ``jwt_revocation_event_anomalies_total``, exported at 0 from the start).
- At ``max_entries``, an event that would add an entry is not applied: :meth:`RecordApplier.apply`
  returns its offset, and the caller pauses the partition there. Nothing is evicted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from jwt_revocation.shared import Event, RecordError
from jwt_revocation.shared._events import record_key

from ._progress import ReplayProgress
from ._state import RevocationState
from ._stats import DelayHistogram, RecordCounts

logger = logging.getLogger(__name__)

# A forged or unsigned SET is an attack or a broken transmitter: logged at ERROR.
KEY_MISMATCH = "key_mismatch"
ANOMALIES = (KEY_MISMATCH,)
"""Every kind of anomaly counted in ``counts.anomalies``: each exported at 0 before the first."""

_LOUD = frozenset({"bad_signature", "unsigned"})


class Record(Protocol):
    """The parts of a Kafka ``ConsumerRecord`` the sidecar reads."""

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def timestamp(self) -> int:
        """Milliseconds since the epoch: when the record was published."""


class Decoded(NamedTuple):
    """A record and what decoding it gave: its event, or why it is skipped."""

    record: Record
    outcome: Event | RecordError


class RecordApplier:
    """Applies each partition's polled records to a state, counting what it did."""

    def __init__(
        self,
        topic: str,
        state: RevocationState,
        progress: ReplayProgress,
        decode: Callable[[bytes | None], Event],
        *,
        max_entries: int | None = None,
        counts: RecordCounts | None = None,
        delays: DelayHistogram | None = None,
    ) -> None:
        self.topic = topic
        self.state = state
        self.progress = progress
        self.decode = decode
        self.max_entries = max_entries
        self.counts = counts if counts is not None else RecordCounts()
        self.delays = delays if delays is not None else DelayHistogram()

    def decode_records(self, partition: int, records: Sequence[Record]) -> list[Decoded]:
        """Decode each record of ``partition`` once; raise what is not a :class:`RecordError`.

        Takes no lock. An unexpected exception is counted and raised with a note naming the
        record (see the module's rules).
        """
        decode = self.decode
        decoded: list[Decoded] = []
        for record in records:
            try:
                outcome: Event | RecordError = decode(record.value)
            except RecordError as err:
                outcome = err
            except Exception as err:
                self.counts.failed[type(err).__name__] += 1
                err.add_note(
                    f"raised while decoding the record at topic={self.topic} "
                    f"partition={partition} offset={record.offset}: not skipped, the consumer "
                    "restarts at it (a bug, not a bad record)"
                )
                raise
            decoded.append(Decoded(record, outcome))
        return decoded

    def apply(
        self, partition: int, decoded: Sequence[Decoded], now: float, *, timed: bool = False
    ) -> int | None:
        """Apply ``decoded`` records of ``partition`` in order; hold ``state.lock`` while calling.

        With ``timed``, each applied record's publish-to-apply delay is counted. Returns None
        when every record was applied or skipped, or the offset of the first record refused for
        want of room.
        """
        state, applied = self.state, self.counts.applied
        ceiling = self.max_entries
        # With room for every record of the list, no record needs the capacity check.
        roomy = ceiling is None or len(state) + len(decoded) < ceiling
        position = self.progress.position(partition)
        stopped_at: int | None = None
        for record, event in decoded:
            if isinstance(event, RecordError):
                self._skip(partition, record.offset, event)
                position = record.offset + 1
                continue
            if (
                not roomy
                and ceiling is not None
                and len(state) >= ceiling
                and state.adds_entry(event)
            ):
                stopped_at = record.offset
                break
            key = record.key
            if key is None or key.decode("utf-8", "replace") != record_key(event):
                self._key_mismatch(partition, record.offset, event.event_id)
            state.apply(event, now)
            applied[event.type] += 1
            position = record.offset + 1
            if timed:
                self.delays.record(now - record.timestamp / 1000)
        self.progress.advance(partition, position)
        return stopped_at

    def _skip(self, partition: int, offset: int, err: RecordError) -> None:
        self.counts.skipped[err.reason] += 1
        logger.log(
            logging.ERROR if err.reason in _LOUD else logging.WARNING,
            "skipped record topic=%s partition=%d offset=%d reason=%s detail=%s",
            self.topic,
            partition,
            offset,
            err.reason,
            err.detail,
        )

    def _key_mismatch(self, partition: int, offset: int, event_id: object) -> None:
        self.counts.anomalies[KEY_MISMATCH] += 1
        logger.warning(
            "applied event under another record key than its own topic=%s partition=%d offset=%d "
            "event_id=%s",
            self.topic,
            partition,
            offset,
            event_id,
        )
