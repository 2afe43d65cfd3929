"""Replay progress: where each partition starts, where it is, and where the replay ends.

:class:`ReplayProgress` is the sidecar's bookkeeping of partitions, in the manner of aiokafka's
``SubscriptionState``: the consumer thread records what it seeks to and applies, and anyone
reads it. It needs no broker.

- ``position``: per partition, the next offset to apply (every earlier record is applied or
  skipped). Positions move under the state's lock, together with the entries they stand for,
  so a snapshot's offsets never run ahead of its state.
- ``target``: the end offset seen when the partition's replay began; the replay is over (the
  sidecar is caught up) once every position has reached its target. A partition added later
  gets its own target, which a caught-up sidecar does not wait for. A forked child forgets the
  targets and catches up again, from the positions it inherited to the end offsets it finds.
- ``end_offset``: the broker's end offset at the last contact, for lag.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PartitionStats:
    """Progress of one partition."""

    position: int
    """The next offset to apply."""
    end_offset: int | None
    """The broker's end offset at the last contact."""
    lag: int | None


class ReplayProgress:
    """Positions, replay targets and end offsets of every partition; written by one thread."""

    def __init__(self) -> None:
        self.positions: dict[int, int] = {}
        self.targets: dict[int, int] = {}
        self.end_offsets: dict[int, int] = {}
        self._starts: dict[int, int] = {}

    def knows(self, partition: int) -> bool:
        """True once the partition has a position (it was started or resumed)."""
        return partition in self.positions

    def start_at(self, partition: int, offset: int, end: int) -> None:
        """Read ``partition`` from ``offset``; its replay is over once it reaches ``end``."""
        self.positions[partition] = offset
        self._starts.setdefault(partition, offset)
        self.targets.setdefault(partition, end)
        self.end_offsets[partition] = end

    def forget_targets(self) -> None:
        """Start a new catch-up: each partition gets a target again when it is next assigned."""
        self.targets.clear()
        self._starts.clear()

    def has_target(self, partition: int) -> bool:
        """True when the partition's catch-up target is known."""
        return partition in self.targets

    def retarget(self, partition: int, end: int) -> None:
        """Catch ``partition`` up, from where it is, to ``end``."""
        self._starts[partition] = self.positions.get(partition, 0)
        self.targets[partition] = end
        self.end_offsets[partition] = end

    def position(self, partition: int) -> int:
        """The next offset to apply of ``partition`` (0 before it was started)."""
        return self.positions.get(partition, 0)

    def advance(self, partition: int, position: int) -> None:
        """Every record of ``partition`` before ``position`` is applied or skipped."""
        self.positions[partition] = position

    def saw_end_offsets(self, ends: dict[int, int]) -> None:
        """The broker's end offsets at a contact."""
        self.end_offsets.update(ends)

    def caught_up(self) -> bool:
        """True when every partition has reached the end offset seen when its replay began."""
        return all(self.positions.get(p, 0) >= t for p, t in self.targets.items())

    def applied_through(self, partition: int, offset: int) -> bool:
        """True once the record at ``offset`` of ``partition`` has been applied (or skipped)."""
        return self.positions.get(partition, 0) > offset

    def behind(self) -> dict[int, int]:
        """Per partition still replaying, how many records it is short of its target."""
        return {
            p: t - self.positions.get(p, 0)
            for p, t in self.targets.items()
            if self.positions.get(p, 0) < t
        }

    def replayed(self) -> tuple[int, int]:
        """Records read so far of the replay, and records the replay reads in all."""
        done = total = 0
        for p, target in self.targets.items():
            start = self._starts.get(p, target)
            total += max(0, target - start)
            done += max(0, min(self.positions.get(p, start), target) - start)
        return done, total

    def describe(self) -> str:
        """One line on how far the replay is."""
        if not self.targets:
            return "end offsets not known yet"
        behind = self.behind()
        return f"behind the start-time end offsets by {behind}" if behind else "caught up"

    def partitions(self) -> dict[int, PartitionStats]:
        """Position, end offset and lag of every partition, copied now."""
        result = {}
        for p, position in sorted(dict(self.positions).items()):
            end = self.end_offsets.get(p)
            lag = None if end is None else max(0, end - position)
            result[p] = PartitionStats(position=position, end_offset=end, lag=lag)
        return result
