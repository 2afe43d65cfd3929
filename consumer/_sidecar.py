"""The sidecar: every revocation event of the topic, materialised in memory in each service.

Consistency contract:

1. Every instance reads every partition of the topic itself: no consumer group, no committed
   offsets. Each sidecar holds the whole state.
2. :meth:`RevocationSidecar.start` replays the topic from ``now - max_token_lifetime -
   max_clock_skew`` (seek by timestamp) and returns only once every partition has reached the
   end offset seen when the replay began. Until then the sidecar is not ready and every
   verification fails closed with :class:`SidecarUnavailableError`.
3. Once ready, events are applied in offset order per partition as they arrive; the merge rules
   (see ``_state``) make the result independent of the order across partitions and of
   duplicates.
4. The sidecar records when it last heard from the broker. After ``max_staleness`` without
   contact, verification fails closed (or, with ``on_stale="allow"``, accepts and logs loudly).
5. A record that is not a valid event is skipped, counted by kind and logged with its
   partition and offset; it never stops the sidecar. A valid event whose Kafka key is not its
   user id is applied (the merge rules need no order) and counted as ``key_mismatch``.
   With ``security_events``, a record that is a Security Event Token is applied only when its
   signature, ``typ``, issuer and audience verify; an unsigned or badly signed one is skipped
   as ``unsigned`` or ``bad_signature`` and logged as an error. Without it, every SET is
   skipped as ``unexpected_set``.
6. Entries are dropped only when they can no longer reject a token. When the configured
   ``max_entries`` is reached, nothing is evicted: consumption pauses, the status says
   ``over_capacity`` and verification fails closed until expiry makes room.
7. With a snapshot store, :meth:`RevocationSidecar.start` first loads the latest snapshot
   and replays only the events after its offsets; it falls back to the full replay of rule 2,
   logging why, when the snapshot is missing, corrupt, of another topic or format, older than
   ``max_token_lifetime``, kept with a shorter window, or when its offsets are no longer on the
   broker. A store with keys refuses a snapshot that is unsigned or forged, logged as an
   error; a sidecar with ``signed_only`` events refuses, at construction, a store without keys. A snapshot's offsets never run ahead of its state, so a sidecar started from one has
   every event up to the end offsets seen at start, as after a full replay. A caught-up sidecar
   writes a snapshot every ``snapshot_interval`` seconds.
8. An unexpected error in the consumer thread is logged with its traceback and the thread
   starts a new consumer after a backoff, resuming at the offsets it had applied. After
   ``max_restarts`` consecutive failures, or a fatal error such as a deleted topic, the
   status is ``failed`` and verification fails closed.
9. A process forked from one with a started sidecar (gunicorn ``--preload``, uWSGI without
   ``lazy-apps``, ``multiprocessing`` with fork) gets a sidecar that is ``loading`` until a new
   consumer thread, started in the child at the fork, has read from the positions the child
   inherited up to the end offsets it finds: no new replay, and never ready while no thread
   reads. Its locks are new, so a lock held by the parent's threads at the fork cannot
   deadlock the child.

The class is a facade that owns the consumer thread and its loop (poll, mirror, apply, contact,
sweep). What the loop decides lives in small parts that need no broker: :class:`SidecarHealth`
(the status), :class:`ReplayProgress` (positions and replay targets), :class:`RecordApplier`
(records into the state), :class:`MirrorFeed` (the Redis sink), the snapshot store's
:func:`resumable` check and :class:`SnapshotWriter`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any, Literal, Self

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from jwt_revocation.shared import (
    Clock,
    ConfigurationError,
    DurationLike,
    LifecycleError,
    RevocationSettings,
    SecurityEventVerifier,
    SidecarUnavailableError,
    SnapshotError,
    check_topic,
    parse_duration,
    record_decoder,
)

from ._apply import RecordApplier
from ._health import SidecarHealth, SidecarStatus
from ._mirror import MirrorFeed, RevocationMirror
from ._progress import ReplayProgress
from ._snapshot import RedisSnapshots, SnapshotWriter, resumable
from ._state import RevocationState, StateSnapshot
from ._stats import DelayHistogram, RecordCounts, SidecarStats

logger = logging.getLogger(__name__)

ReplayWindow = DurationLike | Literal["all"] | None
"""How far back a fresh sidecar reads: None for ``max_token_lifetime + max_clock_skew``."""


class _FatalError(Exception):
    """An error the consumer thread does not retry."""


_STARTED: weakref.WeakSet[RevocationSidecar] = weakref.WeakSet()
"""Sidecars whose consumer thread runs in this process: resumed in a forked child."""


def _resume_after_fork() -> None:
    for sidecar in list(_STARTED):
        sidecar._resume_in_child()


os.register_at_fork(after_in_child=_resume_after_fork)


class RevocationSidecar:
    """Consumes every revocation event into a local :class:`RevocationState`."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = "auth.revocations",
        *,
        max_token_lifetime: DurationLike,
        max_clock_skew: DurationLike = 60,
        max_staleness: DurationLike = 30,
        on_stale: Literal["reject", "allow"] = "reject",
        max_entries: int = 10_000_000,
        clock: Clock = time.time,
        poll_timeout: float = 0.2,
        contact_interval: float = 1.0,
        sweep_interval: float = 10.0,
        max_restarts: int = 10,
        restart_backoff: float = 0.5,
        verify_topic: bool = True,
        name: str | None = None,
        consumer_config: Mapping[str, Any] | None = None,
        snapshots: RedisSnapshots | None = None,
        snapshot_interval: float = 60.0,
        mirror: RevocationMirror | None = None,
        security_events: SecurityEventVerifier | None = None,
        replay_window: ReplayWindow = None,
    ) -> None:
        lifetime = parse_duration(max_token_lifetime, name="max_token_lifetime")
        if lifetime.total_seconds() <= 0:
            raise ConfigurationError("max_token_lifetime must be positive")
        if on_stale not in ("reject", "allow"):
            raise ConfigurationError(f"on_stale must be 'reject' or 'allow'; got {on_stale!r}")
        if max_entries <= 0:
            raise ConfigurationError(f"max_entries must be positive; got {max_entries}")
        for label, value in (
            ("poll_timeout", poll_timeout),
            ("contact_interval", contact_interval),
            ("sweep_interval", sweep_interval),
        ):
            if value <= 0:
                raise ConfigurationError(f"{label} must be positive; got {value}")
        if snapshot_interval < 0:
            raise ConfigurationError(
                f"snapshot_interval must not be negative; got {snapshot_interval}"
            )
        if (
            snapshots is not None
            and not snapshots.signed
            and security_events is not None
            and security_events.signed_only
        ):
            raise ConfigurationError(
                "this sidecar accepts only signed events (signed_only), but its snapshot store "
                "has no key, so whoever can write to Redis could un-revoke tokens: give "
                "RedisSnapshots a key (JWT_REVOCATION_SNAPSHOT_KEY), or no snapshot store"
            )
        if not bootstrap_servers:
            raise ConfigurationError("bootstrap_servers must name at least one broker")
        if not topic:
            raise ConfigurationError("topic must not be empty")
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.max_token_lifetime = lifetime
        self.max_clock_skew = parse_duration(max_clock_skew, name="max_clock_skew")
        self.max_staleness = parse_duration(max_staleness, name="max_staleness")
        self.on_stale = on_stale
        self.max_entries = max_entries
        self.name = name or f"jwt-revocation-sidecar-{id(self):x}"
        self.state = RevocationState(
            max_token_lifetime=lifetime.total_seconds(),
            max_clock_skew=self.max_clock_skew.total_seconds(),
        )
        self.snapshots = snapshots
        self.mirror = mirror
        self.security_events = security_events
        self._window: timedelta | None = (
            None
            if replay_window == "all"
            else self.max_token_lifetime + self.max_clock_skew
            if replay_window is None
            else parse_duration(replay_window, name="replay_window")
        )
        self._clock = clock
        self._poll_timeout_ms = int(poll_timeout * 1000)
        self._contact_interval = contact_interval
        self._sweep_interval = sweep_interval
        self._max_restarts = max_restarts
        self._restart_backoff = restart_backoff
        self._verify_topic = verify_topic
        self._consumer_config = dict(consumer_config or {})
        self._snapshot_interval = snapshot_interval
        self._started_from = "replay"

        label = f"name={self.name} topic={topic}"
        self.progress = ReplayProgress()
        self.health = SidecarHealth(
            max_staleness=self.max_staleness.total_seconds(),
            on_stale=on_stale,
            clock=clock,
            label=label,
            loading_detail=self.progress.describe,
            capacity_detail=lambda: (
                f"{len(self.state)} live entries reached max_entries={self.max_entries}"
            ),
        )
        # Verifiers call this on every request: the health's own method, with no call between.
        self.ensure_usable = self.health.ensure_usable  # type: ignore[method-assign]
        self.counts = RecordCounts()
        self.delays = DelayHistogram()
        decode = record_decoder(security_events, max_token_lifetime=lifetime.total_seconds())
        self._applier = RecordApplier(
            topic,
            self.state,
            self.progress,
            decode,
            max_entries=max_entries,
            counts=self.counts,
            delays=self.delays,
        )
        self._mirror = None if mirror is None else MirrorFeed(mirror, topic, decode)
        self._snapshot_writer = (
            None
            if snapshots is None
            else SnapshotWriter(
                snapshots,
                topic,
                self._take_snapshot,
                max_token_lifetime=lifetime.total_seconds(),
                max_clock_skew=self.max_clock_skew.total_seconds(),
                clock=clock,
                name=self.name,
            )
        )

        self._lifecycle = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ready_event = threading.Event()

    @classmethod
    def from_settings(cls, settings: RevocationSettings, **overrides: Any) -> RevocationSidecar:
        """Build a sidecar from :class:`RevocationSettings`; keyword arguments win."""
        kwargs: dict[str, Any] = {
            "max_token_lifetime": settings.max_token_lifetime,
            "max_clock_skew": settings.max_clock_skew,
            "max_staleness": settings.max_staleness,
            "on_stale": settings.on_stale,
            "max_entries": settings.max_entries,
        }
        if settings.redis_url is not None:
            key = settings.snapshot_key
            kwargs["snapshots"] = RedisSnapshots(
                settings.redis_url.get_secret_value(),
                prefix=settings.redis_prefix,
                ttl=settings.max_token_lifetime,
                key=None if key is None else key.get_secret_value(),
            )
            kwargs["snapshot_interval"] = settings.snapshot_interval.total_seconds()
        if settings.set_verify_key is not None:
            kwargs["security_events"] = SecurityEventVerifier.from_settings(settings)
        kwargs.update(overrides)
        return cls(settings.bootstrap_servers, settings.topic, **kwargs)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float | None = 60.0) -> None:
        """Replay the topic and return once caught up; raise if that fails or takes too long.

        On timeout the sidecar keeps loading in the background (verification fails closed
        meanwhile) and :class:`SidecarUnavailableError` is raised; call :meth:`stop` to give up.
        Calling ``start`` again on a started sidecar only waits.
        """
        with self._lifecycle:
            if self.health.phase is SidecarStatus.STOPPED:
                raise LifecycleError("a stopped sidecar cannot be started again; create a new one")
            if self._thread is None:
                if self._verify_topic:
                    check_topic(
                        self.bootstrap_servers,
                        self.topic,
                        max_token_lifetime=self.max_token_lifetime,
                    )
                sets = self.security_events
                logger.info(
                    "sidecar starting name=%s topic=%s max_token_lifetime_s=%d security_events=%s",
                    self.name,
                    self.topic,
                    self.max_token_lifetime.total_seconds(),
                    "off"
                    if sets is None
                    else f"issuer={sets.issuer} signed_only={str(sets.signed_only).lower()}",
                )
                self.health.start()
                self._start_thread()
        if not self._ready_event.wait(timeout):
            raise SidecarUnavailableError(
                f"sidecar {self.name} did not catch up with topic {self.topic!r} within "
                f"{timeout} s; {self.progress.describe()}",
                reason="loading",
            )
        if self.health.phase is SidecarStatus.FAILED:
            raise SidecarUnavailableError(
                f"sidecar {self.name} failed: {self.health.last_error}", reason="failed"
            )

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        _STARTED.add(self)

    def _resume_in_child(self) -> None:
        """In a forked child: new locks, a new consumer thread, a new catch-up (rule 9)."""
        self._lifecycle = threading.Lock()
        self.state.lock = threading.Lock()
        self._stopping = threading.Event()
        self._ready_event = threading.Event()
        if self._snapshot_writer is not None:
            self._snapshot_writer.forget_thread()
        if self.health.phase not in (SidecarStatus.LOADING, SidecarStatus.CAUGHT_UP):
            return
        self.health.forked()
        self.progress.forget_targets()
        logger.info(
            "sidecar resuming in a forked process name=%s topic=%s pid=%d",
            self.name,
            self.topic,
            os.getpid(),
        )
        self._start_thread()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the consumer thread and close its consumer; verification then fails closed."""
        _STARTED.discard(self)
        with self._lifecycle:
            self.health.stop()
            self._stopping.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._ready_event.set()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- health ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True when verification can decide: caught up, in contact, within capacity."""
        try:
            self.ensure_usable()
        except SidecarUnavailableError:
            return False
        return True

    @property
    def status(self) -> SidecarStatus:
        """The sidecar's status right now."""
        return self.health.status()

    def ensure_usable(self) -> None:  # replaced in __init__ by the health's own method
        """Return if the state can decide a verification now, else raise ``SidecarUnavailableError``."""
        self.health.ensure_usable()

    def stats(self) -> SidecarStats:
        """Counters, positions and lag, copied now."""
        status = self.status
        health, counts = self.health, self.counts
        return SidecarStats(
            status=status,
            ready=self.ready,
            entries=self.state.counts(),
            applied=dict(counts.applied),
            skipped=dict(counts.skipped),
            anomalies=dict(counts.anomalies),
            partitions=self.progress.partitions(),
            seconds_since_contact=health.contact_age(),
            restarts=health.restarts,
            last_error=health.last_error,
            detail=health.describe(status),
            started_from=self._started_from,
            last_snapshot=None if self._snapshot_writer is None else self._snapshot_writer.last_id,
            mirrored=0 if self._mirror is None else self._mirror.mirrored,
            apply_delay=self.delays.cumulative(),
            apply_delay_sum=self.delays.sum,
        )

    def applied_through(self, partition: int, offset: int) -> bool:
        """True once the record at ``offset`` of ``partition`` has been applied (or skipped)."""
        return self.progress.applied_through(partition, offset)

    # -- snapshots -------------------------------------------------------------------------

    def save_snapshot(self) -> str:
        """Write a snapshot of the state and its offsets to the store now; return its id.

        Raises :class:`SnapshotError` when the sidecar has no store, is not caught up, or Redis
        refuses the write.
        """
        if self._snapshot_writer is None:
            raise SnapshotError("this sidecar has no snapshot store", reason="missing")
        return self._snapshot_writer.save()

    def _take_snapshot(self) -> tuple[StateSnapshot, dict[int, int]]:
        if not self.health.is_caught_up:
            raise SnapshotError(
                f"sidecar {self.name} has not caught up; a snapshot now would be incomplete",
                reason="missing",
            )
        # Positions move under the state's lock, together with the entries they stand for.
        with self.state.lock:
            return self.state.copy(), dict(self.progress.positions)

    # -- the consumer thread ---------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        health = self.health
        while not self._stopping.is_set():
            try:
                self._consume()
                break
            except _FatalError as err:
                health.fail(str(err))
                logger.error("sidecar failed name=%s topic=%s error=%s", self.name, self.topic, err)
                break
            except Exception as err:
                failures += 1
                health.crashed(f"{type(err).__name__}: {err}")
                if failures > self._max_restarts:
                    health.fail()
                    logger.exception(
                        "sidecar FAILED after %d consecutive errors name=%s topic=%s; "
                        "verification fails closed",
                        failures,
                        self.name,
                        self.topic,
                    )
                    break
                backoff = min(self._restart_backoff * 2 ** (failures - 1), 30.0)
                logger.exception(
                    "sidecar consumer loop crashed name=%s topic=%s attempt=%d restart_in_s=%.1f",
                    self.name,
                    self.topic,
                    failures,
                    backoff,
                )
                self._stopping.wait(backoff)
            else:
                failures = 0
        self._ready_event.set()
        logger.info("sidecar stopped name=%s topic=%s", self.name, self.topic)

    def _consume(self) -> None:
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.name,
            "group_id": None,
            "enable_auto_commit": False,
            "request_timeout_ms": 5000,
            "reconnect_backoff_max_ms": 1000,
            "fetch_max_wait_ms": 100,
        }
        config.update(self._consumer_config)
        consumer = KafkaConsumer(**config)
        try:
            self._loop(consumer)
        finally:
            consumer.close(autocommit=False)

    def _loop(self, consumer: KafkaConsumer) -> None:
        # Pacing uses the monotonic clock; the injected clock is for comparing instants only,
        # so a test that freezes or jumps its clock does not stall contact checks or sweeps.
        parts = self._partitions(consumer)
        self._assign(consumer, parts)
        if self._mirror is not None:
            self._mirror.resume(f"name={self.name} topic={self.topic}")
        health = self.health
        health.touch()
        tick = time.monotonic
        next_contact = tick() + self._contact_interval
        next_sweep = last_sweep = tick() + self._sweep_interval
        next_metadata = tick() + 30.0
        next_snapshot = tick() + self._snapshot_interval
        while not self._stopping.is_set():
            batch = consumer.poll(timeout_ms=self._poll_timeout_ms)
            if batch:
                self._apply_batch(consumer, batch)
                health.touch()
            if not health.is_caught_up:
                self._check_caught_up()
            now = tick()
            if now >= next_contact:
                self._contact(consumer, parts)
                next_contact = tick() + self._contact_interval
            # While over capacity, look for room twice a second rather than every sweep_interval.
            if now >= next_sweep or (health.over_capacity and now - last_sweep >= 0.5):
                self._sweep(consumer, parts, self._clock())
                last_sweep = tick()
                next_sweep = last_sweep + self._sweep_interval
            if now >= next_metadata:
                parts = self._grow(consumer, parts)
                next_metadata = tick() + 30.0
            writer = self._snapshot_writer
            if writer and self._snapshot_interval and health.is_caught_up and now >= next_snapshot:
                writer.save_in_background()
                next_snapshot = tick() + self._snapshot_interval

    def _apply_batch(self, consumer: KafkaConsumer, batch: Mapping[Any, list[Any]]) -> None:
        """Mirror the batch, then apply it under the state's lock, pausing where it is full."""
        if self._mirror is not None:
            self._mirror.feed(
                ((tp.partition, records) for tp, records in batch.items()), self._clock()
            )
        now = self._clock()
        # The delay from publish (the record's timestamp) to apply, once replay is over.
        timed = self.health.is_caught_up
        with self.state.lock:
            for tp, records in batch.items():
                full_at = self._applier.apply(tp.partition, records, now, timed=timed)
                if full_at is not None:
                    consumer.seek(tp, full_at)
                    consumer.pause(tp)
                    self.health.full(len(self.state), self.max_entries)

    def _check_caught_up(self) -> None:
        if not self.progress.caught_up():
            return
        self.health.caught_up()
        if self._mirror is not None:
            self._mirror.heartbeat(self._clock())
        self._ready_event.set()
        logger.info(
            "sidecar caught up name=%s topic=%s entries=%d applied=%d skipped=%d",
            self.name,
            self.topic,
            len(self.state),
            sum(self.counts.applied.values()),
            sum(self.counts.skipped.values()),
        )

    def _contact(self, consumer: KafkaConsumer, parts: list[TopicPartition]) -> None:
        """Ask the broker for end offsets: proves contact and measures lag."""
        try:
            ends = consumer.end_offsets(parts, timeout_ms=max(500, self._poll_timeout_ms))
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
        if self._mirror is not None and self.health.is_caught_up and not self.health.over_capacity:
            self._mirror.heartbeat(self._clock())

    def _sweep(self, consumer: KafkaConsumer, parts: list[TopicPartition], now: float) -> None:
        removed = self.state.expire(now)
        if removed:
            logger.debug("expired entries name=%s removed=%d", self.name, removed)
        if self.health.over_capacity and len(self.state) < self.max_entries:
            consumer.resume(*parts)
            self.health.room(len(self.state), self.max_entries)

    # -- partitions ------------------------------------------------------------------------

    def _partitions(self, consumer: KafkaConsumer) -> list[TopicPartition]:
        deadline = time.monotonic() + 10.0
        while not (ids := consumer.partitions_for_topic(self.topic)):
            if time.monotonic() > deadline:
                raise _FatalError(f"topic {self.topic!r} does not exist")
            self._stopping.wait(0.2)
        return [TopicPartition(self.topic, p) for p in sorted(ids)]

    def _grow(self, consumer: KafkaConsumer, parts: list[TopicPartition]) -> list[TopicPartition]:
        ids = consumer.partitions_for_topic(self.topic)
        if ids is None:
            raise _FatalError(f"topic {self.topic!r} was deleted")
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
        if self._window is None:
            starts = consumer.beginning_offsets(fresh, timeout_ms=10_000)
        else:
            since_ms = int((self._clock() - self._window.total_seconds()) * 1000)
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

    def _start_at(self, consumer: KafkaConsumer, tp: TopicPartition, offset: int, end: int) -> None:
        consumer.seek(tp, offset)
        self.progress.start_at(tp.partition, offset, end)

    def _warm_start(
        self, consumer: KafkaConsumer, parts: list[TopicPartition], store: RedisSnapshots
    ) -> bool:
        """Load the latest usable snapshot and seek to its offsets; False to replay instead."""
        now = self._clock()
        try:
            loaded = store.load(
                self.topic,
                max_token_lifetime=self.max_token_lifetime.total_seconds(),
                max_clock_skew=self.max_clock_skew.total_seconds(),
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
            self._started_from = f"replay ({err.reason})"
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
        self._started_from = f"snapshot {snapshot.id}"
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
