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
4. The sidecar records when it last heard from the broker: records, and the end offsets it
   asks for every ``contact_interval`` (a third of ``max_staleness`` unless given). After
   ``max_staleness`` without contact, verification fails closed (or, with
   ``on_stale="allow"``, accepts and logs loudly). While the topic is quiet the consumer's
   fetch waits at the broker for up to 2 s (a long poll that returns as soon as a record
   arrives: publish to enforced does not depend on it) and the loop wakes every
   ``poll_timeout`` (0.5 s), or sooner when a chore (contact, sweep, metadata, snapshot) is
   due, so contact keeps its interval: about 0.6 requests/s to each broker that leads a
   partition (a fetch every 2 s, an end-offsets request every ``contact_interval``), and
   0.15-0.18% of a core (BENCHMARKS row 18; 0.08% with ``poll_timeout`` 2 s, at the price of
   :meth:`RevocationSidecar.stop` waiting up to ``poll_timeout`` for the consumer thread, as
   kafka-python cannot interrupt a poll). While catching up the loop waits at most 0.5 s.
5. Each record is decoded once, mirror or not. A record that is not a valid event is
   skipped, counted by kind and logged with its partition and offset; it never stops the
   sidecar. A decoder that raises anything else has met a bug, not a bad record: the error
   is counted by type in ``stats().failed`` and the record is not skipped. The consumer
   crashes on it (rule 8: logged at ERROR with its traceback, status ``degraded``; status
   ``failed``, verification failing closed, if it keeps happening), so a bug never silently
   drops a revocation. A valid event whose Kafka key is not its user id is applied (the
   merge rules need no order) and counted as ``key_mismatch``.
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
   error. Each snapshot not loaded is counted by its reason (``stats().snapshots_unused``, the
   metric ``jwt_revocation_snapshots_unused_total``). A sidecar with ``signed_only`` events refuses, at construction, a store without keys. A snapshot's offsets never run ahead of its state, so a sidecar started from one has
   every event up to the end offsets seen at start, as after a full replay. A caught-up sidecar
   writes a snapshot every ``snapshot_interval`` seconds.
8. An unexpected error in the consumer thread is logged with its traceback and the thread
   starts a new consumer after a backoff (``restart_backoff``, doubling up to 30 s), resuming
   at the offsets it had applied. After ``max_restarts`` consecutive failures, or a fatal
   error such as a deleted topic, the status is ``failed`` and verification fails closed.
   Failures are consecutive while each consumer crashes within 60 s of its start; one that
   ran 60 s was healthy, and the count starts again from zero (:class:`RestartBudget`, which
   gives the reasons for the bound), so crashes far apart never fail the sidecar. A start
   that fails because no broker answers (:func:`unreachable`: Kafka down or cut off) never
   counts: the thread retries at the capped backoff (30 s) for as long as the outage lasts,
   the sidecar failing closed meanwhile (``loading``, or ``stale`` after ``max_staleness``)
   with a status detail ``brokers unreachable since ..., retrying every N s`` logged at ERROR
   once a minute, and it recovers by itself when the brokers answer. A record or a bug that
   crashes the consumer, or credentials the broker refuses, still count.
9. A process forked from one with a started sidecar (gunicorn ``--preload``, uWSGI without
   ``lazy-apps``, ``multiprocessing`` with fork) gets a sidecar that is ``loading`` until a new
   consumer thread, started in the child at the fork, has read from the positions the child
   inherited up to the end offsets it finds: no new replay, and never ready while no thread
   reads. Its locks are new, so a lock held by the parent's threads at the fork cannot
   deadlock the child.
10. With ``shared_path`` the sidecar is a host writer (see ``_shared_state``): its state is
   the shared table in that file, fed as a mirror that takes every event before it is applied,
   with a heartbeat while caught up and in contact; over a file it takes over, each partition
   starts at the file's offset instead of replaying (rule 2's window); no snapshot store;
   :meth:`RevocationSidecar.stop` marks the file stopped.

Every setting named above is a field of one frozen :class:`SidecarOptions` (``options``),
checked once when it is built: from ``RevocationSidecar(options=...)``, from the keyword form
``RevocationSidecar(bootstrap_servers, topic, max_token_lifetime=..., ...)`` (which builds it),
or from :meth:`RevocationSidecar.from_settings`. Its defaults live there. The facade's
``max_token_lifetime``, ``max_staleness``... are properties that read it.

The class is a facade that owns the consumer thread and its loop (poll, mirror, apply, contact,
sweep). What the loop decides lives in small parts that need no broker: :class:`SidecarHealth`
(the status), :class:`RestartBudget` (backoff and giving up), :class:`ReplayProgress`
(positions and replay targets), :class:`RecordApplier` (records into the state),
:class:`MirrorFeed` (the Redis sink), the snapshot store's :func:`resumable` check and
:class:`SnapshotWriter`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from jwt_revocation.shared import (
    Clock,
    ConfigurationError,
    KafkaConnection,
    LifecycleError,
    SecurityEventVerifier,
    SidecarUnavailableError,
    SnapshotError,
    check_topic,
)
from jwt_revocation.shared._arguments import optional_instance, require_callable
from jwt_revocation.shared._options import options_or_keywords
from jwt_revocation.shared._security_events import record_decoder

from ._apply import RecordApplier
from ._health import SidecarHealth, SidecarStatus
from ._mirror import MirrorFeed, MirrorPair, RevocationMirror
from ._options import SidecarOptions
from ._progress import ReplayProgress
from ._reader import FatalError, TopicReader
from ._restart import RestartBudget, unreachable
from ._shared_state import SharedStateWriter, SharedTableState
from ._snapshot import RedisSnapshots, SnapshotWriter
from ._state import RevocationState, StateSnapshot
from ._stats import DelayHistogram, RecordCounts, SidecarStats

if TYPE_CHECKING:
    from jwt_revocation.shared import RevocationSettings

logger = logging.getLogger(__name__)

_STARTED: weakref.WeakSet[RevocationSidecar] = weakref.WeakSet()
"""Sidecars whose consumer thread runs in this process: resumed in a forked child."""


def _resume_after_fork() -> None:
    for sidecar in list(_STARTED):
        sidecar._resume_in_child()


os.register_at_fork(after_in_child=_resume_after_fork)


COLLABORATORS = ("clock", "snapshots", "mirror", "security_events")
"""The keywords of a sidecar that are objects it works with, not settings."""


def _check_collaborators(
    options: SidecarOptions,
    snapshots: object,
    mirror: object,
    security_events: object,
) -> None:
    """The objects' types, and their combinations with the options."""
    store = optional_instance(
        snapshots, RedisSnapshots, name="snapshots", how="RedisSnapshots(redis_url, ...)"
    )
    sets = optional_instance(
        security_events,
        SecurityEventVerifier,
        name="security_events",
        how="SecurityEventVerifier(key, issuer=..., algorithms=[...])",
    )
    if mirror is not None and not all(
        callable(getattr(mirror, method, None))
        for method in ("resume_offsets", "write", "heartbeat")
    ):
        raise ConfigurationError(
            "mirror must be a RevocationMirror, such as RedisBlocklistSink(redis_url, ...); "
            f"got {type(mirror).__name__}"
        )
    if store is not None and not store.signed and sets is not None and sets.signed_only:
        raise ConfigurationError(
            "this sidecar accepts only signed events (signed_only), but its snapshot store "
            "has no key, so whoever can write to Redis could un-revoke tokens: give "
            "RedisSnapshots a key (JWT_REVOCATION_SNAPSHOT_KEY), or no snapshot store"
        )
    if options.shared_path is not None and store is not None:
        raise ConfigurationError(
            "a host writer (shared_path) keeps its state in its shared file and starts "
            "from it: give it no snapshot store"
        )


class RevocationSidecar:
    """Consumes every revocation event into a local :class:`RevocationState`."""

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        topic: str | None = None,
        *,
        options: SidecarOptions | None = None,
        clock: Clock = time.time,
        snapshots: RedisSnapshots | None = None,
        mirror: RevocationMirror | None = None,
        security_events: SecurityEventVerifier | None = None,
        **settings: Any,
    ) -> None:
        """Take the settings as ``options=SidecarOptions(...)``, or as keywords
        (``bootstrap_servers``, ``topic`` and every field of :class:`SidecarOptions`), which
        build the same object; plus the collaborators, which are no settings."""
        given = {"bootstrap_servers": bootstrap_servers, "topic": topic}
        settings.update((key, value) for key, value in given.items() if value is not None)
        self.options = options_or_keywords(options, SidecarOptions, settings)
        """Every setting of this sidecar, checked once; the parts read theirs from it."""
        options = self.options
        require_callable(clock, name="clock", how="a function returning epoch seconds: time.time")
        _check_collaborators(options, snapshots, mirror, security_events)
        self.name = options.name or f"jwt-revocation-sidecar-{id(self):x}"
        lifetime = options.max_token_lifetime.total_seconds()
        skew = options.max_clock_skew.total_seconds()
        self.shared = (
            None if options.shared_path is None else SharedStateWriter.from_options(options)
        )
        """The host's shared state this sidecar keeps (``shared_path``), or None."""
        self.state = (
            RevocationState(max_token_lifetime=lifetime, max_clock_skew=skew)
            if self.shared is None
            else SharedTableState(self.shared)
        )
        self.snapshots = snapshots
        self.mirror = mirror
        feed: RevocationMirror | None = mirror
        if self.shared is not None:
            feed = self.shared if mirror is None else MirrorPair(mirror, self.shared)
        self.security_events = security_events
        self._clock = clock
        self._restarts = RestartBudget(
            max_restarts=options.max_restarts, backoff=options.restart_backoff.total_seconds()
        )

        self.progress = ReplayProgress()
        self.health = SidecarHealth(
            max_staleness=options.max_staleness.total_seconds(),
            on_stale=options.on_stale,
            clock=clock,
            label=f"name={self.name} topic={options.topic}",
            loading_detail=self.progress.describe,
            capacity_detail=lambda: (
                f"{len(self.state)} live entries reached max_entries={options.max_entries}"
            ),
        )
        # Verifiers call this on every request: the health's own method, with no call between.
        self.ensure_usable = self.health.ensure_usable  # type: ignore[method-assign]
        self.counts = RecordCounts()
        self.delays = DelayHistogram()
        applier = RecordApplier(
            options.topic,
            self.state,
            self.progress,
            record_decoder(security_events, max_token_lifetime=lifetime),
            max_entries=options.max_entries,
            counts=self.counts,
            delays=self.delays,
        )
        self._snapshot_writer = (
            None
            if snapshots is None
            else SnapshotWriter(
                snapshots,
                options.topic,
                self._take_snapshot,
                max_token_lifetime=lifetime,
                max_clock_skew=skew,
                clock=clock,
                name=self.name,
            )
        )
        self._reader = TopicReader(
            name=self.name,
            options=options,
            state=self.state,
            progress=self.progress,
            health=self.health,
            applier=applier,
            clock=clock,
            mirror=None if feed is None else MirrorFeed(feed, options.topic),
            snapshots=snapshots,
            snapshot_writer=self._snapshot_writer,
            on_caught_up=lambda: self._ready_event.set(),
            resume_from=None if self.shared is None else self._shared_offsets,
        )

        self._lifecycle = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ready_event = threading.Event()

    @classmethod
    def from_options(cls, options: SidecarOptions, **collaborators: Any) -> RevocationSidecar:
        """A sidecar with these options; ``clock``, ``snapshots``, ``mirror`` and
        ``security_events`` as keywords."""
        return cls(options=options, **collaborators)

    @classmethod
    def from_settings(cls, settings: RevocationSettings, **overrides: Any) -> RevocationSidecar:
        """Build a sidecar from :class:`RevocationSettings`; keyword arguments win.

        Options (:meth:`SidecarOptions.from_settings`) and collaborators: a snapshot store
        with ``JWT_REVOCATION_REDIS_URL``, a SET verifier with ``JWT_REVOCATION_SET_VERIFY_KEY``.
        """
        parts = {k: overrides.pop(k) for k in list(overrides) if k in COLLABORATORS}
        options = SidecarOptions.from_settings(settings, **overrides)
        if "snapshots" not in parts and settings.redis_url is not None:
            key = settings.snapshot_key
            parts["snapshots"] = RedisSnapshots(
                settings.redis_url.get_secret_value(),
                prefix=settings.redis_prefix,
                ttl=settings.max_token_lifetime,
                key=None if key is None else key.get_secret_value(),
            )
        if "security_events" not in parts and settings.set_verify_key is not None:
            parts["security_events"] = SecurityEventVerifier.from_settings(settings)
        return cls(options=options, **parts)

    # -- the settings, read from the options -------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        return self.options.bootstrap_servers

    @property
    def topic(self) -> str:
        return self.options.topic

    @property
    def max_token_lifetime(self) -> timedelta:
        return self.options.max_token_lifetime

    @property
    def max_clock_skew(self) -> timedelta:
        return self.options.max_clock_skew

    @property
    def max_staleness(self) -> timedelta:
        return self.options.max_staleness

    @property
    def on_stale(self) -> Literal["reject", "allow"]:
        return self.options.on_stale

    @property
    def max_entries(self) -> int:
        return self.options.max_entries

    @property
    def connection(self) -> KafkaConnection:
        return self.options.connection

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float | None = 60.0) -> None:
        """Replay the topic and return once caught up; raise if that fails or takes too long.

        On timeout the sidecar keeps loading in the background (verification fails closed
        meanwhile) and :class:`SidecarUnavailableError` is raised; call :meth:`stop` to give up.
        Calling ``start`` again on a started sidecar only waits.

        The topic is checked first (unless ``verify_topic=False``): one that some broker does not
        list yet (just created) is waited for within ``timeout`` (60 s when None); one that no
        broker lists is a :class:`TopicNotFoundError` after ``TOPIC_APPEAR_TIMEOUT`` (2 s).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lifecycle:
            if self.health.phase is SidecarStatus.STOPPED:
                raise LifecycleError("a stopped sidecar cannot be started again; create a new one")
            if self._thread is None:
                if self.options.verify_topic:
                    check_topic(
                        self.bootstrap_servers,
                        self.topic,
                        max_token_lifetime=self.max_token_lifetime,
                        connection=self.connection,
                        strict_replication=self.options.strict_replication,
                        wait=60.0 if timeout is None else timeout,
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
        if not self._ready_event.wait(
            None if deadline is None else max(0.0, deadline - time.monotonic())
        ):
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
        if self.shared is not None:
            self.shared.close()

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
            started_from=self._reader.started_from,
            snapshots_unused=dict(self._reader.snapshots_unused),
            last_snapshot=None if self._snapshot_writer is None else self._snapshot_writer.last_id,
            mirrored=0 if self._reader.mirror is None else self._reader.mirror.mirrored,
            apply_delay=self.delays.cumulative(),
            apply_delay_sum=self.delays.sum,
            failed=dict(counts.failed),
        )

    def applied_through(self, partition: int, offset: int) -> bool:
        """True once the record at ``offset`` of ``partition`` has been applied (or skipped)."""
        return self.progress.applied_through(partition, offset)

    def _shared_offsets(self) -> dict[int, int]:
        assert self.shared is not None
        return self.shared.resume_offsets(self.topic)

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
        """Run the reader; after a crash start a new consumer, backing off (rule 8)."""
        budget = self._restarts
        health = self.health
        while not self._stopping.is_set():
            budget.started()
            contact = health.last_contact
            try:
                self._reader.consume(self._stopping)
                break
            except FatalError as err:
                health.fail(str(err))
                logger.error("sidecar failed name=%s topic=%s error=%s", self.name, self.topic, err)
                break
            except Exception as err:
                if health.last_contact != contact:
                    budget.reached()
                if unreachable(err):
                    retry = budget.unreachable()
                    health.unreachable(f"{type(err).__name__}: {err}", retry.backoff)
                    logger.log(
                        logging.ERROR if retry.report else logging.DEBUG,
                        "sidecar: brokers unreachable name=%s topic=%s for_s=%.0f attempt=%d "
                        "retry_in_s=%.1f status=%s: verification fails closed once stale; "
                        "error=%s",
                        self.name,
                        self.topic,
                        retry.outage,
                        retry.attempt,
                        retry.backoff,
                        health.status(),
                        err,
                    )
                    self._stopping.wait(retry.backoff)
                    continue
                health.crashed(f"{type(err).__name__}: {err}")
                backoff = budget.crashed()
                if backoff is None:
                    health.fail()
                    logger.exception(
                        "sidecar FAILED after %d consecutive errors name=%s topic=%s; "
                        "verification fails closed",
                        budget.failures,
                        self.name,
                        self.topic,
                    )
                    break
                logger.exception(
                    "sidecar consumer loop crashed name=%s topic=%s attempt=%d restart_in_s=%.1f",
                    self.name,
                    self.topic,
                    budget.failures,
                    backoff,
                )
                self._stopping.wait(backoff)
        self._ready_event.set()
        logger.info("sidecar stopped name=%s topic=%s", self.name, self.topic)
