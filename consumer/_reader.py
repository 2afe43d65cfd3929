"""The consumer thread's work: one KafkaConsumer that reads every partition into the state.

:class:`TopicReader` is what :class:`RevocationSidecar` runs in its thread, once per consumer
(a crash starts a new one): it assigns every partition with no consumer group, starts each new
partition from a snapshot or the time window (``replay_window``) and known ones from their
positions, then loops: poll, mirror, apply, contact, sweep, grow, snapshot. Its decisions live
in the broker-free parts it is given (health, progress, applier, mirror feed, snapshot writer);
this class is the part that talks to the broker. Its settings (brokers, topic, timing, window,
capacity, connection, consumer options) are read from the sidecar's :class:`SidecarOptions`,
whose durations it turns into seconds of the monotonic clock it loops on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jwt_revocation.shared import Clock, KafkaConnection, SnapshotError
from jwt_revocation.shared._connection import authorization_detail, client_config, open_client

from ._apply import RecordApplier
from ._health import SidecarHealth
from ._mirror import MirrorFeed
from ._options import SidecarOptions
from ._progress import ReplayProgress
from ._snapshot import RedisSnapshots, SnapshotWriter, resumable
from ._state import RevocationState

if TYPE_CHECKING:
    # kafka-python costs about 180 ms to import: it is imported when a reader starts, so a
    # process that only verifies against a shared state or a Redis blocklist never pays it.
    from kafka import KafkaConsumer, TopicPartition

logger = logging.getLogger(__name__)


IDLE_FETCH_WAIT_MS = 2000
"""How long the broker holds a fetch while the topic is quiet (``fetch_max_wait_ms``). The
fetch returns as soon as a record arrives (``fetch_min_bytes`` 1), so the wait costs no
latency; at 100 ms a quiet sidecar sent 10.7 requests/s (BENCHMARKS row 12), at 2 s it sends
one fetch every 2 s and one end-offsets request every ``contact_interval``."""


CATCH_UP_POLL = 0.5
"""The longest the loop waits for records while catching up (seconds): readiness is seen
within this of the positions reaching the replay's end, whatever ``poll_timeout``."""


class FatalError(Exception):
    """An error the consumer thread does not retry (a missing or deleted topic, a right that
    an ACL denies)."""


METADATA_INTERVAL = 30.0
"""Seconds between two looks for partitions added to the topic."""


def poll_wait(poll_timeout: float, until_due: float, *, caught_up: bool) -> float:
    """Seconds to wait for records when the next chore is due in ``until_due``: until then,
    at most ``poll_timeout`` (a long poll: it returns as soon as a record arrives), at most
    :data:`CATCH_UP_POLL` while catching up; never negative."""
    limit = poll_timeout if caught_up else min(poll_timeout, CATCH_UP_POLL)
    return min(limit, max(until_due, 0.0))


@dataclass
class TopicReader:
    """Reads one topic into a state through a KafkaConsumer it builds; one thread owns it."""

    name: str
    options: SidecarOptions
    """The topic, the brokers, the timing, the window and the capacity: read from here."""
    state: RevocationState
    progress: ReplayProgress
    health: SidecarHealth
    applier: RecordApplier
    clock: Clock
    mirror: MirrorFeed | None = None
    snapshots: RedisSnapshots | None = None
    snapshot_writer: SnapshotWriter | None = None
    on_caught_up: Callable[[], None] = lambda: None
    resume_from: Callable[[], dict[int, int]] | None = None
    """A host writer's shared file: where each partition its state holds stops (warm start)."""
    _contact_ms: int = field(default=500, init=False)
    started_from: str = "replay"
    """``replay``, ``snapshot <id>``, or ``replay (<why the snapshot was not used>)``."""
    snapshots_unused: Counter[str] = field(default_factory=Counter)
    """Snapshots not loaded at a start, by why (``missing``, ``forged``...): a replay instead."""

    @property
    def topic(self) -> str:
        return self.options.topic

    @property
    def connection(self) -> KafkaConnection:
        return self.options.connection

    @property
    def max_entries(self) -> int:
        return self.options.max_entries

    @property
    def _poll_ms(self) -> int:
        return int(self.options.poll_timeout.total_seconds() * 1000)

    def consume(self, stopping: threading.Event) -> None:
        """Build a consumer and read until ``stopping`` is set; raise what stops the loop.

        A right an ACL denies (READ or DESCRIBE on the topic) is a :class:`FatalError` naming
        it: waiting would not grant it.
        """
        from kafka.errors import AuthorizationError

        config = client_config(
            "consumer",
            self.options.bootstrap_servers,
            self.connection,
            client_id=self.name,
            timeout=10.0,
            defaults={
                "group_id": None,
                "enable_auto_commit": False,
                "request_timeout_ms": 5000,
                "fetch_max_wait_ms": IDLE_FETCH_WAIT_MS,
            },
            overrides=self.options.consumer_config,
        )
        # A broker answers one connection's requests in order, so the end-offsets request of
        # a contact may wait behind a long fetch: give it the fetch's wait and a second more.
        self._contact_ms = max(500, self._poll_ms, int(config["fetch_max_wait_ms"]) + 1000)
        consumer = open_client("consumer", config, self.connection, timeout=10.0)
        try:
            self._loop(consumer, stopping)
        except AuthorizationError as err:
            detail = authorization_detail(
                err, self.connection, operation=f"READ topic {self.topic!r}", role="sidecar"
            )
            raise FatalError(detail) from err
        finally:
            consumer.close(autocommit=False)

    def _loop(self, consumer: KafkaConsumer, stopping: threading.Event) -> None:
        # Pacing uses the monotonic clock; the injected clock is for comparing instants only,
        # so a test that freezes or jumps its clock does not stall contact checks or sweeps.
        parts = self._partitions(consumer, stopping)
        self._assign(consumer, parts)
        if self.mirror is not None:
            self.mirror.resume(f"name={self.name} topic={self.topic}")
        health = self.health
        health.touch()
        tick = time.monotonic
        # The options' durations in seconds of the monotonic clock the loop counts with.
        options = self.options
        contact_every = options.contact_every.total_seconds()
        sweep_every = options.sweep_interval.total_seconds()
        snapshot_every = options.snapshot_interval.total_seconds()
        next_contact = tick() + contact_every
        next_sweep = last_sweep = tick() + sweep_every
        next_metadata = tick() + METADATA_INTERVAL
        next_snapshot = tick() + snapshot_every
        poll_every = options.poll_timeout.total_seconds()
        writer = self.snapshot_writer
        snapshots = bool(writer and snapshot_every)
        # Never ready before the first fetch has come back: on an empty topic the end offsets
        # alone (DESCRIBE) would say caught up, while a principal that may not READ the topic
        # learns it only from the fetch, and would otherwise serve with revocations it cannot see.
        while not stopping.is_set():
            due = min(next_contact, next_sweep, next_metadata)
            if health.over_capacity:
                due = min(due, last_sweep + 0.5)
            if snapshots and health.is_caught_up:
                due = min(due, next_snapshot)
            wait = poll_wait(poll_every, due - tick(), caught_up=health.is_caught_up)
            batch = consumer.poll(timeout_ms=int(wait * 1000))
            if batch:
                self._apply_batch(consumer, batch)
                health.touch()
            if not health.is_caught_up:
                self._check_caught_up()
            now = tick()
            if now >= next_contact:
                self._contact(consumer, parts)
                next_contact = tick() + contact_every
            # While over capacity, look for room twice a second rather than every sweep_interval.
            if now >= next_sweep or (health.over_capacity and now - last_sweep >= 0.5):
                self._sweep(consumer, parts, self.clock())
                last_sweep = tick()
                next_sweep = last_sweep + sweep_every
            if now >= next_metadata:
                parts = self._grow(consumer, parts)
                next_metadata = tick() + METADATA_INTERVAL
            if writer and snapshots and health.is_caught_up and now >= next_snapshot:
                writer.save_in_background()
                next_snapshot = tick() + snapshot_every

    def _apply_batch(self, consumer: KafkaConsumer, batch: Mapping[Any, list[Any]]) -> None:
        """Decode the batch once, mirror it, then apply it under the state's lock, pausing
        where it is full."""
        applier = self.applier
        decoded = [
            (tp, applier.decode_records(tp.partition, records)) for tp, records in batch.items()
        ]
        if self.mirror is not None:
            self.mirror.feed(((tp.partition, items) for tp, items in decoded), self.clock())
        now = self.clock()
        # The delay from publish (the record's timestamp) to apply, once replay is over.
        timed = self.health.is_caught_up
        with self.state.lock:
            for tp, items in decoded:
                full_at = applier.apply(tp.partition, items, now, timed=timed)
                if full_at is not None:
                    consumer.seek(tp, full_at)
                    consumer.pause(tp)
                    self.health.full(len(self.state), self.max_entries)

    def _check_caught_up(self) -> None:
        if not self.progress.caught_up():
            return
        self.health.caught_up()
        if self.mirror is not None:
            self.mirror.heartbeat(self.clock())
        self.on_caught_up()
        logger.info(
            "sidecar caught up name=%s topic=%s entries=%d applied=%d skipped=%d",
            self.name,
            self.topic,
            len(self.state),
            sum(self.applier.counts.applied.values()),
            sum(self.applier.counts.skipped.values()),
        )

    def _contact(self, consumer: KafkaConsumer, parts: list[TopicPartition]) -> None:
        """Ask the broker for end offsets: proves contact and measures lag."""
        from kafka.errors import KafkaError

        try:
            ends = consumer.end_offsets(parts, timeout_ms=self._contact_ms)
        except KafkaError as err:
            logger.warning(
                "no answer from the broker name=%s topic=%s seconds_since_contact=%s error=%s",
                self.name,
                self.topic,
                self.health.contact_age(),
                type(err).__name__,
            )
            return
        self.progress.saw_end_offsets({tp.partition: end for tp, end in ends.items()})
        self.health.touch()
        if self.mirror is not None and self.health.is_caught_up and not self.health.over_capacity:
            self.mirror.heartbeat(self.clock())

    def _sweep(self, consumer: KafkaConsumer, parts: list[TopicPartition], now: float) -> None:
        removed = self.state.expire(now)
        if removed:
            logger.debug("expired entries name=%s removed=%d", self.name, removed)
        if self.health.over_capacity and len(self.state) < self.max_entries:
            consumer.resume(*parts)
            self.health.room(len(self.state), self.max_entries)

    # -- partitions ------------------------------------------------------------------------

    def _partitions(
        self, consumer: KafkaConsumer, stopping: threading.Event
    ) -> list[TopicPartition]:
        from kafka import TopicPartition

        deadline = time.monotonic() + 10.0
        while not (ids := consumer.partitions_for_topic(self.topic)):
            if time.monotonic() > deadline:
                raise FatalError(f"topic {self.topic!r} does not exist")
            stopping.wait(0.2)
        return [TopicPartition(self.topic, p) for p in sorted(ids)]

    def _grow(self, consumer: KafkaConsumer, parts: list[TopicPartition]) -> list[TopicPartition]:
        from kafka import TopicPartition

        ids = consumer.partitions_for_topic(self.topic)
        if ids is None:
            raise FatalError(f"topic {self.topic!r} was deleted")
        if len(ids) == len(parts):
            return parts
        grown = [TopicPartition(self.topic, p) for p in sorted(ids)]
        logger.warning(
            "topic grew name=%s topic=%s partitions=%d->%d",
            self.name,
            self.topic,
            len(parts),
            len(grown),
        )
        self._assign(consumer, grown)
        return grown

    def _assign(self, consumer: KafkaConsumer, parts: list[TopicPartition]) -> None:
        """Assign ``parts``; resume known partitions, replay new ones from the time window."""
        consumer.assign(parts)
        progress = self.progress
        fresh = [tp for tp in parts if not progress.knows(tp.partition)]
        known = [tp for tp in parts if progress.knows(tp.partition)]
        for tp in known:
            consumer.seek(tp, progress.position(tp.partition))
        untargeted = [tp for tp in known if not progress.has_target(tp.partition)]
        if untargeted:  # a forked child catches up with what was published since the fork
            ends = consumer.end_offsets(untargeted, timeout_ms=10_000)
            for tp in untargeted:
                progress.retarget(tp.partition, ends[tp])
        if self.resume_from is not None and not progress.positions:
            fresh = self._resume(consumer, fresh, self.resume_from())
        if not fresh:
            return
        store = self.snapshots
        if (
            store is not None
            and not progress.positions
            and self._warm_start(consumer, fresh, store)
        ):
            return
        ends = consumer.end_offsets(fresh, timeout_ms=10_000)
        window = self.options.window
        if window is None:
            starts = consumer.beginning_offsets(fresh, timeout_ms=10_000)
        else:
            since_ms = int((self.clock() - window.total_seconds()) * 1000)
            found = consumer.offsets_for_times(dict.fromkeys(fresh, since_ms), timeout_ms=10_000)
            starts = {tp: ends[tp] if found.get(tp) is None else found[tp].offset for tp in fresh}
        for tp in fresh:
            self._start_at(consumer, tp, starts[tp], ends[tp])
        logger.info(
            "sidecar replaying name=%s topic=%s from_offsets=%s to_offsets=%s",
            self.name,
            self.topic,
            {tp.partition: starts[tp] for tp in fresh},
            {tp.partition: ends[tp] for tp in fresh},
        )

    def _resume(
        self, consumer: KafkaConsumer, parts: list[TopicPartition], held: dict[int, int]
    ) -> list[TopicPartition]:
        """Start the partitions the state already holds at its offsets; return the others.

        An offset past the partition's end means the file was kept for an older topic of the
        same name: a :class:`FatalError`, since reading on would skip records.
        """
        known = [tp for tp in parts if tp.partition in held]
        if not known:
            return parts
        begins = consumer.beginning_offsets(known, timeout_ms=10_000)
        ends = consumer.end_offsets(known, timeout_ms=10_000)
        for tp in known:
            if held[tp.partition] > ends[tp]:
                raise FatalError(
                    f"the state's offset {held[tp.partition]} of partition {tp.partition} is "
                    f"past the topic's end ({ends[tp]}): the topic {self.topic!r} was created "
                    "again; remove the shared state file and restart"
                )
            # Below the first offset kept, the records are gone and so past mattering.
            self._start_at(consumer, tp, max(held[tp.partition], begins[tp]), ends[tp])
        self.started_from = f"shared state ({len(self.state)} entries)"
        logger.info(
            "sidecar resuming its shared state name=%s topic=%s entries=%d offsets=%s",
            self.name,
            self.topic,
            len(self.state),
            {tp.partition: held[tp.partition] for tp in known},
        )
        return [tp for tp in parts if tp.partition not in held]

    def _start_at(self, consumer: KafkaConsumer, tp: TopicPartition, offset: int, end: int) -> None:
        consumer.seek(tp, offset)
        self.progress.start_at(tp.partition, offset, end)

    def _warm_start(
        self, consumer: KafkaConsumer, parts: list[TopicPartition], store: RedisSnapshots
    ) -> bool:
        """Load the latest usable snapshot and seek to its offsets; False to replay instead."""
        now = self.clock()
        try:
            loaded = store.load(
                self.topic,
                max_token_lifetime=self.options.max_token_lifetime.total_seconds(),
                max_clock_skew=self.options.max_clock_skew.total_seconds(),
                now=now,
            )
            begins = consumer.beginning_offsets(parts, timeout_ms=10_000)
            ends = consumer.end_offsets(parts, timeout_ms=10_000)
            snapshot = resumable(
                loaded,
                {tp.partition: o for tp, o in begins.items()},
                {tp.partition: o for tp, o in ends.items()},
            )
        except SnapshotError as err:
            self.started_from = f"replay ({err.reason})"
            self.snapshots_unused[err.reason] += 1
            # Under a key, an unsigned or forged snapshot was written by someone without the
            # key (or, unsigned, before the key was set): an error, where the ordinary
            # fallbacks are warnings.
            untrusted = err.reason in ("unsigned", "forged")
            logger.log(
                logging.ERROR if untrusted else logging.WARNING,
                "sidecar not starting from a snapshot name=%s topic=%s reason=%s detail=%s; "
                "replaying the whole window instead",
                self.name,
                self.topic,
                err.reason,
                err,
            )
            return False
        entries = self.state.load(snapshot.state, now)
        for tp in parts:
            self._start_at(consumer, tp, snapshot.offsets[tp.partition], ends[tp])
        self.started_from = f"snapshot {snapshot.id}"
        logger.info(
            "sidecar starting from snapshot name=%s topic=%s id=%s age_s=%.1f entries=%d "
            "replaying_records=%d",
            self.name,
            self.topic,
            snapshot.id,
            now - snapshot.created_at,
            entries,
            sum(ends[tp] - snapshot.offsets[tp.partition] for tp in parts),
        )
        if len(self.state) >= self.max_entries:
            consumer.pause(*parts)
            self.health.full(len(self.state), self.max_entries)
        return True
