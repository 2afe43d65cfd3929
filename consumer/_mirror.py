"""The mirror feed: every event handed to a mirror (the Redis sink) before the sidecar applies it.

A mirror keeps its own offsets; on start the feed asks for them and hands over only records at
or past them, so a mirror restarted with its sidecar neither misses nor needs to re-read events.
If the mirror raises, the sidecar applies nothing of the batch and its consumer restarts at the
applied offsets, so the mirror is asked again: it never misses an event.

The feed decodes nothing: it reads the records the applier decoded once for the whole poll
(:meth:`RecordApplier.decode_records`), and passes over those that are no event (the applier
counts and logs them when it applies the batch).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from jwt_revocation.shared import Event, RecordError

from ._apply import Decoded

logger = logging.getLogger(__name__)


class RevocationMirror(Protocol):
    """Something that receives every event before the sidecar applies it (the Redis sink)."""

    def resume_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset of the first event not received yet."""

    def write(
        self, topic: str, events: Sequence[Event], offsets: Mapping[int, int], now: float
    ) -> None:
        """Take events and the offsets after them together, or raise."""

    def heartbeat(self, topic: str, now: float) -> None:
        """The sidecar is caught up and heard from the broker at ``now``; must not raise."""


class MirrorFeed:
    """Hands a mirror the events past its own offsets, batch by batch."""

    def __init__(self, mirror: RevocationMirror, topic: str) -> None:
        self.mirror = mirror
        self.topic = topic
        self.floor: dict[int, int] | None = None
        """Per partition, the mirror's next offset; None until :meth:`resume`."""
        self.mirrored = 0
        """Events handed to the mirror since start."""

    def resume(self, label: str) -> None:
        """Ask the mirror where it stands, once."""
        if self.floor is None:
            self.floor = dict(self.mirror.resume_offsets(self.topic))
            logger.info("mirror resumes %s offsets=%s", label, self.floor)

    def feed(self, batch: Iterable[tuple[int, Sequence[Decoded]]], now: float) -> None:
        """Hand the batch's events past the mirror's offsets to it, or raise what it raised."""
        floor = self.floor
        if floor is None:
            return
        events: list[Event] = []
        ends: dict[int, int] = {}
        for partition, decoded in batch:
            start = floor.get(partition, 0)
            for record, outcome in decoded:
                if record.offset < start:
                    continue
                if not isinstance(outcome, RecordError):  # counted when the batch is applied
                    events.append(outcome)
                ends[partition] = record.offset + 1
        if ends:
            self.mirror.write(self.topic, events, ends, now)
            floor.update(ends)
            self.mirrored += len(events)

    def heartbeat(self, now: float) -> None:
        """The sidecar is caught up and in contact."""
        self.mirror.heartbeat(self.topic, now)


class MirrorPair:
    """Two mirrors fed as one (the Redis sink and the host's shared state).

    Both merge events idempotently, so the pair resumes at the lower of their offsets and a
    mirror may be handed events it already holds.
    """

    def __init__(self, first: RevocationMirror, second: RevocationMirror) -> None:
        self.mirrors = (first, second)

    def resume_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the lower of the two mirrors' offsets (a partition either lacks: none)."""
        first, second = (m.resume_offsets(topic) for m in self.mirrors)
        return {p: min(o, second[p]) for p, o in first.items() if p in second}

    def write(
        self, topic: str, events: Sequence[Event], offsets: Mapping[int, int], now: float
    ) -> None:
        """Hand the events to both mirrors, or raise what one raised."""
        for mirror in self.mirrors:
            mirror.write(topic, events, offsets, now)

    def heartbeat(self, topic: str, now: float) -> None:
        """Tell both mirrors."""
        for mirror in self.mirrors:
            mirror.heartbeat(topic, now)
