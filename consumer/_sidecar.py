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
   broker. A snapshot's offsets never run ahead of its state, so a sidecar started from one has
   every event up to the end offsets seen at start, as after a full replay. A caught-up sidecar
   writes a snapshot every ``snapshot_interval`` seconds.
8. An unexpected error in the consumer thread is logged with its traceback and the thread
   starts a new consumer after a backoff, resuming at the offsets it had applied. After
   ``max_restarts`` consecutive failures, or a fatal error such as a deleted topic, the
   status is ``failed`` and verification fails closed.
"""

from __future__ import annotations

import bisect
import contextlib
import enum
import itertools
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, Self

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from jwt_revocation.shared import (
    ConfigurationError,
    DurationLike,
    LifecycleError,
    RecordError,
    RevocationSettings,
    SecurityEventVerifier,
    SidecarUnavailableError,
    UnavailableReason,
    check_topic,
    parse_duration,
    record_decoder,
)

from ._snapshot import RedisSnapshots, SnapshotError
from ._state import Event, RevocationState

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds since the epoch, like :func:`time.time`."""


DELAY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds, in seconds, of the publish-to-apply delay histogram."""


class SidecarStatus(enum.StrEnum):
    """Where a sidecar is in its life; only ``caught_up`` and ``degraded`` can verify."""

    NEW = "new"
    LOADING = "loading"
    CAUGHT_UP = "caught_up"
    DEGRADED = "degraded"
    """Caught up and in contact, but the consumer thread is recovering from an error."""
    STALE = "stale"
    OVER_CAPACITY = "over_capacity"
    FAILED = "failed"
    STOPPED = "stopped"


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


@dataclass(frozen=True)
class PartitionStats:
    """Progress of one partition."""

    position: int
    """The next offset to apply."""
    end_offset: int | None
    """The broker's end offset at the last contact."""
    lag: int | None


@dataclass(frozen=True)
class SidecarStats:
    """A point-in-time view of a sidecar, for status pages, logs and tests."""

    status: SidecarStatus
    ready: bool
    entries: dict[str, int]
    applied: dict[str, int]
    """Events applied, by type (duplicates and moot events included)."""
    skipped: dict[str, int]
    """Records skipped, by kind."""
    anomalies: dict[str, int]
    """Events applied despite something odd, by kind (``key_mismatch``)."""
    partitions: dict[int, PartitionStats]
    seconds_since_contact: float | None
    restarts: int
    last_error: str | None
    detail: str = ""
    started_from: str = "replay"
    """``replay``, ``snapshot <id>``, or ``replay (<why the snapshot was not used>)``."""
    last_snapshot: str | None = None
    """The id of the last snapshot this sidecar wrote."""
    mirrored: int = 0
    """Events handed to the mirror (the Redis sink) since start."""
    apply_delay: tuple[tuple[float, int], ...] = ()
    """Cumulative histogram of publish-to-apply delays once caught up: (upper bound s, count)."""
    apply_delay_sum: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "status": self.status.value,
            "ready": self.ready,
            "detail": self.detail,
            "entries": self.entries,
            "applied": self.applied,
            "skipped": self.skipped,
            "anomalies": self.anomalies,
            "partitions": {
                str(p): {"position": s.position, "end_offset": s.end_offset, "lag": s.lag}
                for p, s in sorted(self.partitions.items())
            },
            "seconds_since_contact": self.seconds_since_contact,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "started_from": self.started_from,
            "last_snapshot": self.last_snapshot,
            "mirrored": self.mirrored,
            "apply_delay": {
                "buckets": {str(bound): n for bound, n in self.apply_delay},
                "sum": self.apply_delay_sum,
                "count": self.apply_delay[-1][1] if self.apply_delay else 0,
            },
        }


class _FatalError(Exception):
    """An error the consumer thread does not retry."""


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
        self._clock = clock
        self._poll_timeout_ms = int(poll_timeout * 1000)
        self._contact_interval = contact_interval
        self._sweep_interval = sweep_interval
        self._max_restarts = max_restarts
        self._restart_backoff = restart_backoff
        self._verify_topic = verify_topic
        self._consumer_config = dict(consumer_config or {})
        if snapshot_interval < 0:
            raise ConfigurationError(
                f"snapshot_interval must not be negative; got {snapshot_interval}"
            )
        self.snapshots = snapshots
        self._snapshot_interval = snapshot_interval
        self._started_from = "replay"
        self._last_snapshot: str | None = None
        self._snapshot_writer: threading.Thread | None = None
        self.mirror = mirror
        self.security_events = security_events
        self._decode = record_decoder(security_events, max_token_lifetime=lifetime.total_seconds())
        self._mirror_floor: dict[int, int] | None = None
        self._mirrored = 0
        self._delays = [0] * (len(DELAY_BUCKETS) + 1)
        self._delay_sum = 0.0
        self._staleness_s = self.max_staleness.total_seconds()

        self._lifecycle = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ready_event = threading.Event()
        # Written by the consumer thread only; read anywhere.
        self._caught_up = False
        self._failed = False
        self._stopped = False
        self._over_capacity = False
        self._recovering = False
        self._last_contact: float | None = None
        self._targets: dict[int, int] = {}
        self._positions: dict[int, int] = {}
        self._end_offsets: dict[int, int] = {}
        self._applied: Counter[str] = Counter()
        self._skipped: Counter[str] = Counter()
        self._anomalies: Counter[str] = Counter()
        self._restarts = 0
        self._last_error: str | None = None
        self._last_stale_warning = 0.0

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
            kwargs["snapshots"] = RedisSnapshots(
                settings.redis_url.get_secret_value(),
                prefix=settings.redis_prefix,
                ttl=settings.max_token_lifetime,
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
            if self._stopped:
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
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        if not self._ready_event.wait(timeout):
            raise SidecarUnavailableError(
                f"sidecar {self.name} did not catch up with topic {self.topic!r} within "
                f"{timeout} s; {self._progress()}",
                reason="loading",
            )
        if self._failed:
            raise SidecarUnavailableError(
                f"sidecar {self.name} failed: {self._last_error}", reason="failed"
            )

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the consumer thread and close its consumer; verification then fails closed."""
        with self._lifecycle:
            self._stopped = True
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
        if self._stopped:
            return SidecarStatus.STOPPED
        if self._failed:
            return SidecarStatus.FAILED
        if self._thread is None:
            return SidecarStatus.NEW
        if not self._caught_up:
            return SidecarStatus.LOADING
        if self._over_capacity:
            return SidecarStatus.OVER_CAPACITY
        if self._is_stale():
            return SidecarStatus.STALE
        if self._recovering:
            return SidecarStatus.DEGRADED
        return SidecarStatus.CAUGHT_UP

    def _is_stale(self) -> bool:
        last = self._last_contact
        return last is None or self._clock() - last > self._staleness_s

    def ensure_usable(self) -> None:
        """Return if the state can decide a verification now, else raise ``SidecarUnavailableError``."""
        last = self._last_contact  # the fast path: one clock read, no method call
        if (
            self._caught_up
            and last is not None
            and self._clock() - last <= self._staleness_s
            and not (self._stopped or self._failed or self._over_capacity)
        ):
            return
        status = self.status
        if status is SidecarStatus.STALE and self.on_stale == "allow":
            self._warn_stale()
            return
        reasons: dict[SidecarStatus, UnavailableReason] = {
            SidecarStatus.NEW: "not_started",
            SidecarStatus.LOADING: "loading",
            SidecarStatus.STALE: "stale",
            SidecarStatus.FAILED: "failed",
            SidecarStatus.OVER_CAPACITY: "over_capacity",
            SidecarStatus.STOPPED: "stopped",
        }
        reason = reasons.get(status, "loading")
        raise SidecarUnavailableError(
            f"revocation state unavailable ({reason}): {self._describe(status)}", reason=reason
        )

    def _warn_stale(self) -> None:
        now = time.monotonic()
        if now - self._last_stale_warning >= 10:
            self._last_stale_warning = now
            logger.warning(
                "STALE revocation state accepted because on_stale=allow name=%s topic=%s "
                "seconds_since_contact=%s: revocations published since then are NOT enforced",
                self.name,
                self.topic,
                self._contact_age(),
            )

    def _contact_age(self) -> float | None:
        last = self._last_contact
        return None if last is None else round(self._clock() - last, 3)

    def _describe(self, status: SidecarStatus) -> str:
        if status is SidecarStatus.STALE:
            return (
                f"no contact with the broker for {self._contact_age()} s "
                f"(max_staleness {self._staleness_s} s)"
            )
        if status is SidecarStatus.OVER_CAPACITY:
            return f"{len(self.state)} live entries reached max_entries={self.max_entries}"
        if status is SidecarStatus.FAILED:
            return f"consumer thread gave up: {self._last_error}"
        if status is SidecarStatus.LOADING:
            return self._progress()
        if status is SidecarStatus.NEW:
            return "start() has not been called"
        if status is SidecarStatus.STOPPED:
            return "stop() was called"
        return ""

    def _progress(self) -> str:
        if not self._targets:
            return "end offsets not known yet"
        behind = {
            p: t - self._positions.get(p, 0)
            for p, t in self._targets.items()
            if self._positions.get(p, 0) < t
        }
        return f"behind the start-time end offsets by {behind}" if behind else "caught up"

    def stats(self) -> SidecarStats:
        """Counters, positions and lag, copied now."""
        status = self.status
        partitions = {}
        for p, position in sorted(dict(self._positions).items()):
            end = self._end_offsets.get(p)
            lag = None if end is None else max(0, end - position)
            partitions[p] = PartitionStats(position=position, end_offset=end, lag=lag)
        return SidecarStats(
            status=status,
            ready=self.ready,
            entries=self.state.counts(),
            applied=dict(self._applied),
            skipped=dict(self._skipped),
            anomalies=dict(self._anomalies),
            partitions=partitions,
            seconds_since_contact=self._contact_age(),
            restarts=self._restarts,
            last_error=self._last_error,
            detail=self._describe(status),
            started_from=self._started_from,
            last_snapshot=self._last_snapshot,
            mirrored=self._mirrored,
            apply_delay=tuple(
                zip((*DELAY_BUCKETS, math.inf), itertools.accumulate(self._delays), strict=True)
            ),
            apply_delay_sum=self._delay_sum,
        )

    def applied_through(self, partition: int, offset: int) -> bool:
        """True once the record at ``offset`` of ``partition`` has been applied (or skipped)."""
        return self._positions.get(partition, 0) > offset

    # -- the consumer thread ---------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self._consume()
                break
            except _FatalError as err:
                self._last_error = str(err)
                self._failed = True
                logger.error("sidecar failed name=%s topic=%s error=%s", self.name, self.topic, err)
                break
            except Exception as err:
                failures += 1
                self._restarts += 1
                self._recovering = True
                self._last_error = f"{type(err).__name__}: {err}"
                if failures > self._max_restarts:
                    self._failed = True
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

    def _partitions(self, consumer: KafkaConsumer) -> list[TopicPartition]:
        deadline = time.monotonic() + 10.0
        while not (ids := consumer.partitions_for_topic(self.topic)):
            if time.monotonic() > deadline:
                raise _FatalError(f"topic {self.topic!r} does not exist")
            self._stopping.wait(0.2)
        return [TopicPartition(self.topic, p) for p in sorted(ids)]

    def _assign(self, consumer: KafkaConsumer, parts: list[TopicPartition]) -> None:
        """Assign ``parts``; resume known partitions, replay new ones from the time window."""
        consumer.assign(parts)
        fresh = [tp for tp in parts if tp.partition not in self._positions]
        for tp in parts:
            if tp.partition in self._positions:
                consumer.seek(tp, self._positions[tp.partition])
        if not fresh:
            return
        if self.snapshots is not None and not self._positions and self._warm_start(consumer, fresh):
            return
        window = self.max_token_lifetime + self.max_clock_skew
        since_ms = int((self._clock() - window.total_seconds()) * 1000)
        ends = consumer.end_offsets(fresh, timeout_ms=10_000)
        found = consumer.offsets_for_times(dict.fromkeys(fresh, since_ms), timeout_ms=10_000)
        for tp in fresh:
            hit = found.get(tp)
            self._start_at(consumer, tp, ends[tp] if hit is None else hit.offset, ends[tp])
        logger.info(
            "sidecar replaying name=%s topic=%s from_offsets=%s to_offsets=%s",
            self.name,
            self.topic,
            {tp.partition: self._positions[tp.partition] for tp in fresh},
            {tp.partition: ends[tp] for tp in fresh},
        )

    def _start_at(self, consumer: KafkaConsumer, tp: TopicPartition, offset: int, end: int) -> None:
        """Read ``tp`` from ``offset``; the replay is over once it reaches ``end``."""
        consumer.seek(tp, offset)
        self._positions[tp.partition] = offset
        self._targets.setdefault(tp.partition, end)
        self._end_offsets[tp.partition] = end

    def _warm_start(self, consumer: KafkaConsumer, parts: list[TopicPartition]) -> bool:
        """Load the latest usable snapshot and seek to its offsets; False to replay instead."""
        if self.snapshots is None:
            return False
        now = self._clock()
        try:
            snapshot = self.snapshots.load(
                self.topic,
                max_token_lifetime=self.max_token_lifetime.total_seconds(),
                max_clock_skew=self.max_clock_skew.total_seconds(),
                now=now,
            )
            ids = sorted(tp.partition for tp in parts)
            if sorted(snapshot.offsets) != ids:
                raise SnapshotError(
                    f"snapshot {snapshot.id} covers partitions {sorted(snapshot.offsets)}, the "
                    f"topic has {ids}",
                    reason="partitions_changed",
                )
            begins = consumer.beginning_offsets(parts, timeout_ms=10_000)
            ends = consumer.end_offsets(parts, timeout_ms=10_000)
            gone = {
                tp.partition: snapshot.offsets[tp.partition]
                for tp in parts
                if not begins[tp] <= snapshot.offsets[tp.partition] <= ends[tp]
            }
            if gone:
                first = {tp.partition: begins[tp] for tp in parts}
                end = {tp.partition: ends[tp] for tp in parts}
                raise SnapshotError(
                    f"snapshot {snapshot.id} resumes at offsets {gone}, which the broker no "
                    f"longer holds (first offsets {first}, end offsets {end})",
                    reason="offsets_gone",
                )
        except SnapshotError as err:
            self._started_from = f"replay ({err.reason})"
            logger.warning(
                "sidecar not starting from a snapshot name=%s topic=%s reason=%s detail=%s; "
                "replaying the whole window instead",
                self.name,
                self.topic,
                err.reason,
                err,
            )
            return False
        loaded = self.state.load(snapshot.state, now)
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
            loaded,
            sum(ends[tp] - snapshot.offsets[tp.partition] for tp in parts),
        )
        if len(self.state) >= self.max_entries:
            consumer.pause(*parts)
            self._enter_over_capacity()
        return True

    def save_snapshot(self) -> str:
        """Write a snapshot of the state and its offsets to the store now; return its id.

        Raises :class:`SnapshotError` when the sidecar has no store, is not caught up, or Redis
        refuses the write.
        """
        if self.snapshots is None:
            raise SnapshotError("this sidecar has no snapshot store", reason="missing")
        if not self._caught_up:
            raise SnapshotError(
                f"sidecar {self.name} has not caught up; a snapshot now would be incomplete",
                reason="missing",
            )
        # Positions move under the state's lock, together with the entries they stand for.
        with self.state.lock:
            state = self.state.copy()
            offsets = dict(self._positions)
        snapshot_id = self.snapshots.save(
            self.topic,
            state,
            offsets,
            created_at=self._clock(),
            max_token_lifetime=self.max_token_lifetime.total_seconds(),
            max_clock_skew=self.max_clock_skew.total_seconds(),
        )
        self._last_snapshot = snapshot_id
        return snapshot_id

    def _snapshot_in_background(self) -> None:
        if self._snapshot_writer is not None and self._snapshot_writer.is_alive():
            return

        def write() -> None:
            try:
                self.save_snapshot()
            except SnapshotError as err:
                logger.warning(
                    "snapshot not written name=%s topic=%s reason=%s detail=%s",
                    self.name,
                    self.topic,
                    err.reason,
                    err,
                )

        self._snapshot_writer = threading.Thread(
            target=write, name=f"{self.name}-snapshot", daemon=True
        )
        self._snapshot_writer.start()

    def _loop(self, consumer: KafkaConsumer) -> None:
        # Pacing uses the monotonic clock; the injected clock is for comparing instants only,
        # so a test that freezes or jumps its clock does not stall contact checks or sweeps.
        parts = self._partitions(consumer)
        self._assign(consumer, parts)
        if self.mirror is not None and self._mirror_floor is None:
            self._mirror_floor = dict(self.mirror.resume_offsets(self.topic))
            logger.info(
                "mirror resumes name=%s topic=%s offsets=%s",
                self.name,
                self.topic,
                self._mirror_floor,
            )
        self._touch()
        tick = time.monotonic
        next_contact = tick() + self._contact_interval
        next_sweep = last_sweep = tick() + self._sweep_interval
        next_metadata = tick() + 30.0
        next_snapshot = tick() + self._snapshot_interval
        while not self._stopping.is_set():
            batch = consumer.poll(timeout_ms=self._poll_timeout_ms)
            if batch:
                if self._mirror_floor is not None:
                    self._mirror_batch(batch)
                self._apply_batch(consumer, batch)
                self._touch()
            if not self._caught_up:
                self._check_caught_up()
            now = tick()
            if now >= next_contact:
                self._contact(consumer, parts)
                next_contact = tick() + self._contact_interval
            # While over capacity, look for room twice a second rather than every sweep_interval.
            if now >= next_sweep or (self._over_capacity and now - last_sweep >= 0.5):
                self._sweep(consumer, parts, self._clock())
                last_sweep = tick()
                next_sweep = last_sweep + self._sweep_interval
            if now >= next_metadata:
                parts = self._grow(consumer, parts)
                next_metadata = tick() + 30.0
            if (
                self.snapshots
                and self._snapshot_interval
                and self._caught_up
                and now >= next_snapshot
            ):
                self._snapshot_in_background()
                next_snapshot = tick() + self._snapshot_interval

    def _touch(self) -> None:
        self._last_contact = self._clock()
        if self._recovering and self._caught_up:
            self._recovering = False
            logger.info("sidecar recovered name=%s topic=%s", self.name, self.topic)

    def _apply_batch(self, consumer: KafkaConsumer, batch: Mapping[Any, list[Any]]) -> None:
        state = self.state
        now = self._clock()
        applied, decode = self._applied, self._decode
        # The delay from publish (the record's timestamp) to apply, once replay is over.
        caught_up, delays = self._caught_up, self._delays
        with state.lock:
            for tp, records in batch.items():
                # With room for every record of the list, no record needs the capacity check.
                roomy = len(state) + len(records) < self.max_entries
                position = self._positions.get(tp.partition, 0)
                for record in records:
                    try:
                        event = decode(record.value)
                    except RecordError as err:
                        self._skip(tp, record.offset, err)
                        position = record.offset + 1
                        continue
                    if not roomy and len(state) >= self.max_entries and state.adds_entry(event):
                        consumer.seek(tp, record.offset)
                        consumer.pause(tp)
                        self._enter_over_capacity()
                        break
                    key = record.key
                    if key is None or key.decode("utf-8", "replace") != event.user_id:
                        self._key_mismatch(tp, record.offset, event.event_id)
                    state.apply(event, now)
                    applied[event.type] += 1
                    position = record.offset + 1
                    if caught_up:
                        delay = max(0.0, now - record.timestamp / 1000)
                        delays[bisect.bisect_left(DELAY_BUCKETS, delay)] += 1
                        self._delay_sum += delay
                self._positions[tp.partition] = position

    def _mirror_batch(self, batch: Mapping[Any, list[Any]]) -> None:
        """Hand the batch's events past the mirror's offsets to it, before applying them.

        If the mirror raises, nothing of the batch is applied and the consumer restarts at the
        applied offsets, so the mirror is asked again: it never misses an event.
        """
        mirror, floor = self.mirror, self._mirror_floor
        if mirror is None or floor is None:
            return
        events: list[Event] = []
        ends: dict[int, int] = {}
        for tp, records in batch.items():
            start = floor.get(tp.partition, 0)
            for record in records:
                if record.offset < start:
                    continue
                with contextlib.suppress(RecordError):  # counted when the batch is applied
                    events.append(self._decode(record.value))
                ends[tp.partition] = record.offset + 1
        if ends:
            mirror.write(self.topic, events, ends, self._clock())
            floor.update(ends)
            self._mirrored += len(events)

    def _skip(self, tp: TopicPartition, offset: int, err: RecordError) -> None:
        self._skipped[err.reason] += 1
        # A forged or unsigned SET is an attack or a broken transmitter: say so loudly.
        loud = err.reason in ("bad_signature", "unsigned")
        logger.log(
            logging.ERROR if loud else logging.WARNING,
            "skipped record topic=%s partition=%d offset=%d reason=%s detail=%s",
            tp.topic,
            tp.partition,
            offset,
            err.reason,
            err.detail,
        )

    def _key_mismatch(self, tp: TopicPartition, offset: int, event_id: object) -> None:
        self._anomalies["key_mismatch"] += 1
        logger.warning(
            "applied event whose record key is not its user id topic=%s partition=%d offset=%d "
            "event_id=%s",
            tp.topic,
            tp.partition,
            offset,
            event_id,
        )

    def _enter_over_capacity(self) -> None:
        if not self._over_capacity:
            self._over_capacity = True
            logger.error(
                "sidecar OVER CAPACITY name=%s topic=%s entries=%d max_entries=%d: consumption "
                "paused, verification fails closed; nothing is evicted",
                self.name,
                self.topic,
                len(self.state),
                self.max_entries,
            )

    def _sweep(self, consumer: KafkaConsumer, parts: list[TopicPartition], now: float) -> None:
        removed = self.state.expire(now)
        if removed:
            logger.debug("expired entries name=%s removed=%d", self.name, removed)
        if self._over_capacity and len(self.state) < self.max_entries:
            self._over_capacity = False
            consumer.resume(*parts)
            logger.warning(
                "sidecar back under capacity name=%s entries=%d max_entries=%d",
                self.name,
                len(self.state),
                self.max_entries,
            )

    def _check_caught_up(self) -> None:
        if all(self._positions.get(p, 0) >= t for p, t in self._targets.items()):
            self._caught_up = True
            if self.mirror is not None:
                self.mirror.heartbeat(self.topic, self._clock())
            self._ready_event.set()
            logger.info(
                "sidecar caught up name=%s topic=%s entries=%d applied=%d skipped=%d",
                self.name,
                self.topic,
                len(self.state),
                sum(self._applied.values()),
                sum(self._skipped.values()),
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
                self._contact_age(),
                type(err).__name__,
            )
            return
        for tp, end in ends.items():
            self._end_offsets[tp.partition] = end
        self._touch()
        if self.mirror is not None and self._caught_up and not self._over_capacity:
            self.mirror.heartbeat(self.topic, self._clock())

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
