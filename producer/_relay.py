"""The outbox relay: publish committed outbox rows, oldest first, at least once.

Contract:

1. A step (:meth:`OutboxRelay.poll`) reads up to ``batch_size`` pending rows (``published_at``
   NULL) in ``id`` order, hands their events to ``send`` (the publisher's ``publish_many``:
   it returns once the broker acknowledged every event with ``acks=all``, or raises
   :class:`~jwt_revocation.shared.PublishError`), then marks them published, in one database
   transaction. Rows are marked only after the acknowledgement.
2. A relay that dies between the acknowledgement and the commit leaves its rows pending: the
   next relay publishes them again with the same ``event_id``. The sidecar's merge rules make
   the duplicate harmless, so at-least-once is exact in effect.
3. When ``send`` fails, the rows stay pending with ``attempts`` and ``last_error`` updated,
   and the relay backs off (doubling from ``min_backoff`` up to ``max_backoff``) before the
   next try; it goes on by itself once the broker answers again. Each failure is logged at
   WARNING; one that will not pass by itself (not ``retriable``: the topic does not exist, an
   ACL refuses the write, the table is missing) is logged at ERROR, at most once per
   :data:`ERROR_INTERVAL`, for as long as it lasts.
4. On PostgreSQL several relays share the work: each locks its batch with ``FOR UPDATE SKIP
   LOCKED``, so no row is handed to two relays at once, and none waits for another. On SQLite
   (a file) one relay holds a lock file beside the database and a second one stands by until
   it is released (on stop, or by the kernel when the first process dies).
5. On PostgreSQL the relay LISTENs on ``jwt_revocation_outbox``: the outbox's trigger
   notifies at commit, so a committed row is published without waiting for ``poll_interval``
   (the fallback when no notification arrives, and the only pacing elsewhere). A writer in the
   relay's own process calls :meth:`OutboxRelay.wake` after its commit for the same effect on
   SQLite (the receiver does).
6. Published rows older than ``retention`` are deleted every ``prune_interval``; pending rows
   never are.
7. Time comes from ``clock`` (backoff, pruning, row ages), so tests move time instead of
   sleeping; the loop itself waits with :func:`time.monotonic`.
8. The engine is a sync ``Engine``: an async one (or its ``sync_engine``, which still drives
   the async driver and fails outside an event loop) is refused at construction with a
   ``ConfigurationError`` naming the sync URL to build on the same database. Taking it would
   mean a second engine built behind the caller's back, without its pool or ``connect_args``.

The settings named above (``batch_size``, ``poll_interval``, ``min_backoff``,
``max_backoff``, ``retention``, ``prune_interval``, ``listen``, ``name``) are one frozen
:class:`RelayOptions` (``options``), built from ``options=`` or from the same keywords; the
relay's attributes of those names read it, in seconds.

Metrics (:class:`OutboxRelayCollector`, served with the status by
:class:`OutboxRelayHTTPServer`): rows pending, age of the oldest pending row, rows
published, publish failures, database errors; :meth:`OutboxRelay.status` gives the same as a
dict. Logs name event ids and row counts, and the database URL with its password masked.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Self

from jwt_revocation.shared import (
    Clock,
    Event,
    HTTPLimits,
    LifecycleError,
    OutboxError,
    PublishError,
    RecordError,
    RevocationError,
    decode_event,
)
from jwt_revocation.shared._arguments import require_callable
from jwt_revocation.shared._events import to_datetime
from jwt_revocation.shared._extras import needs_extra
from jwt_revocation.shared._http import BackgroundHTTPServer, json_app, json_response
from jwt_revocation.shared._options import options_or_keywords

from ._options import RelayOptions
from ._outbox import NOTIFY_CHANNEL, OUTBOX, require_sync_engine

with needs_extra("outbox", __name__):
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
    from sqlalchemy import Engine, delete, func, select, update
    from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

if TYPE_CHECKING:
    from sqlalchemy.pool import PoolProxiedConnection

logger = logging.getLogger(__name__)

SendBatch = Callable[[Sequence[Event]], object]
"""Publishes events and returns once every one was acknowledged, or raises ``PublishError``."""

RelayState = Literal["stopped", "idle", "publishing", "backing_off", "standby"]
"""``standby``: another relay holds the SQLite lock; ``backing_off``: the last try failed."""

_SLICE = 0.25
"""The longest a waiting relay goes without looking at its stop flag (bounds shutdown)."""


ERROR_INTERVAL = 60.0
"""Seconds between two ERROR lines of a relay whose failure needs a person (contract rule 3)."""


def masked_url(engine: Engine) -> str:
    """The engine's URL with its password masked, for logs and messages."""
    return engine.url.render_as_string(hide_password=True)


class OutboxRelay:
    """Publishes committed outbox rows through ``send``; ``start()``/``stop()`` or ``run()``.

    ``send`` is usually ``publisher.publish_many``; any callable with its contract will do
    (tests pass one that records what it got).
    """

    def __init__(
        self,
        engine: Engine,
        send: SendBatch,
        *,
        options: RelayOptions | None = None,
        clock: Clock = time.time,
        **settings: Any,
    ) -> None:
        """Take the settings as ``options=RelayOptions(...)`` or as keywords (every field of
        :class:`RelayOptions`: ``batch_size``, ``poll_interval``...), which build it."""
        require_callable(
            send, name="send", how="a function taking a list of events: publisher.publish_many"
        )
        require_callable(clock, name="clock", how="a function returning epoch seconds: time.time")
        # Async engines are refused: the relay's thread has no event loop to drive one, and
        # LISTEN needs psycopg's sync connection.
        self.engine = require_sync_engine(engine, "OutboxRelay")
        self.options = options_or_keywords(options, RelayOptions, settings)
        """Every setting of this relay, checked once."""
        self.name = self.options.name
        batch_size = self.options.batch_size
        self._send = send
        self._clock = clock
        self._file_lock = _FileLock.for_engine(engine)
        self._select = (
            select(OUTBOX.c.id, OUTBOX.c.payload)
            .where(OUTBOX.c.published_at.is_(None))
            .order_by(OUTBOX.c.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one relay, unlocked
        )
        self._state: RelayState = "stopped"
        self._counters = threading.Lock()
        self._published = 0
        self._batches = 0
        self._failures = 0
        self._database_errors = 0
        self._consecutive_failures = 0
        self._retry_at = 0.0
        self._next_prune = 0.0
        self._last_error: str | None = None
        self._alarmed_at: float | None = None
        self._listening = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- the settings in the seconds of the relay's clock -----------------------------------

    @property
    def batch_size(self) -> int:
        return self.options.batch_size

    @property
    def poll_interval(self) -> float:
        """``options.poll_interval`` in seconds, what :meth:`poll` returns when idle."""
        return self.options.poll_interval.total_seconds()

    @property
    def min_backoff(self) -> float:
        return self.options.min_backoff.total_seconds()

    @property
    def max_backoff(self) -> float:
        return self.options.max_backoff.total_seconds()

    @property
    def retention(self) -> float | None:
        kept = self.options.retention
        return None if kept is None else kept.total_seconds()

    @property
    def prune_interval(self) -> float:
        return self.options.prune_interval.total_seconds()

    @property
    def listen(self) -> bool:
        return self.options.listen

    # -- one step --------------------------------------------------------------------------

    def poll(self) -> float:
        """Take one step now: prune when due, publish at most one batch.

        Returns the seconds after which the next step is worth taking: 0 after a batch (there
        may be more), ``poll_interval`` when nothing was pending, the backoff after a failure.
        Raises only what ``send`` raises other than ``PublishError``.
        """
        now = self._clock()
        if now < self._retry_at:
            return self._retry_at - now
        if self._file_lock is not None and not self._file_lock.acquire():
            self._state = "standby"
            return self.poll_interval
        try:
            if self.retention is not None and now >= self._next_prune:
                self.prune(now)
                self._next_prune = now + self.prune_interval
            sent = self._relay_batch(now)
        except (PublishError, OutboxError) as err:
            return self._back_off(now, err)
        self._consecutive_failures = 0
        self._alarmed_at = None
        self._state = "publishing" if sent else "idle"
        return 0.0 if sent else self.poll_interval

    def _relay_batch(self, now: float) -> int:
        failure: PublishError | None = None
        try:
            with self.engine.begin() as connection:
                rows = connection.execute(self._select).all()
                if not rows:
                    return 0
                ids = [row.id for row in rows]
                events = [_event(row.id, row.payload) for row in rows]
                try:
                    self._send(events)
                except PublishError as err:
                    failure = err
                    marks: dict[str, Any] = {"last_error": str(err)[:2000]}
                else:
                    marks = {"published_at": to_datetime(now, name="now"), "last_error": None}
                connection.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.id.in_(ids))
                    .values(attempts=OUTBOX.c.attempts + 1, **marks)
                )
        except SQLAlchemyError as err:
            raise self._database_error("relay a batch", err) from err
        if failure is not None:
            raise failure
        with self._counters:
            self._published += len(events)
            self._batches += 1
        logger.debug(
            "relayed rows=%d first_event_id=%s last_event_id=%s",
            len(events),
            events[0].event_id,
            events[-1].event_id,
        )
        return len(events)

    def _back_off(self, now: float, err: Exception) -> float:
        self._consecutive_failures += 1
        delay = min(self.max_backoff, self.min_backoff * 2.0 ** (self._consecutive_failures - 1))
        self._retry_at = now + delay
        self._state = "backing_off"
        with self._counters:
            if isinstance(err, PublishError):
                self._failures += 1
            else:
                self._database_errors += 1
            self._last_error = f"{type(err).__name__}: {err}"
        level = logging.WARNING
        if (
            isinstance(err, RevocationError)
            and not err.retriable
            and (self._alarmed_at is None or now - self._alarmed_at >= ERROR_INTERVAL)
        ):
            level, self._alarmed_at = logging.ERROR, now
        logger.log(
            level,
            "relay %s failed (%d in a row), next try in %.1f s: %s",
            self.name,
            self._consecutive_failures,
            delay,
            self._last_error,
        )
        return delay

    def _database_error(self, action: str, err: SQLAlchemyError) -> OutboxError:
        return database_error(self.engine, action, err)

    # -- pruning and status ----------------------------------------------------------------

    def prune(self, now: float | None = None) -> int:
        """Delete rows published more than ``retention`` ago; return how many."""
        if self.retention is None:
            return 0
        when = self._clock() if now is None else now
        cutoff = to_datetime(when - self.retention, name="cutoff")
        try:
            with self.engine.begin() as connection:
                result = connection.execute(delete(OUTBOX).where(OUTBOX.c.published_at < cutoff))
        except SQLAlchemyError as err:
            raise self._database_error("prune", err) from err
        if result.rowcount:
            logger.info("pruned published outbox rows=%d", result.rowcount)
        return int(result.rowcount)

    def pending(self) -> tuple[int, float | None]:
        """Rows pending, and the age in seconds of the oldest (None when none is pending)."""
        query = select(func.count(), func.min(OUTBOX.c.created_at)).where(
            OUTBOX.c.published_at.is_(None)
        )
        try:
            with self.engine.connect() as connection:
                count, oldest = connection.execute(query).one()
        except SQLAlchemyError as err:
            raise self._database_error("count pending rows", err) from err
        if oldest is None:
            return int(count), None
        return int(count), max(0.0, self._clock() - _utc(oldest).timestamp())

    def status(self) -> dict[str, Any]:
        """The relay's state and counters, and the table's pending rows (None if unreadable)."""
        try:
            pending, oldest = self.pending()
        except OutboxError:
            pending, oldest = None, None
        with self._counters:
            return {
                "name": self.name,
                "state": self._state,
                "database": masked_url(self.engine),
                "listening": self._listening,
                "pending_rows": pending,
                "oldest_pending_seconds": oldest,
                "published": self._published,
                "batches": self._batches,
                "publish_failures": self._failures,
                "database_errors": self._database_errors,
                "last_error": self._last_error,
                "retry_in_seconds": max(0.0, self._retry_at - self._clock()),
            }

    @property
    def state(self) -> RelayState:
        """``stopped``, ``idle``, ``publishing``, ``backing_off`` or ``standby``."""
        return self._state

    # -- the loop --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set (the foreground form of :meth:`start`).

        Survives every error: it is logged, counted and followed by a backoff.
        """
        listener = _Listener(self.engine) if self.listen and _can_listen(self.engine) else None
        logger.info(
            "relay %s started database=%s batch_size=%d listen=%s",
            self.name,
            masked_url(self.engine),
            self.batch_size,
            listener is not None,
        )
        self._state = "idle"
        try:
            while not stop.is_set():
                try:
                    delay = self.poll()
                except Exception as err:
                    logger.exception("relay %s step failed", self.name)
                    delay = self._back_off(self._clock(), err)
                self._wait(delay, stop, listener)
        finally:
            if listener is not None:
                listener.close()
            self._listening = False
            if self._file_lock is not None:
                self._file_lock.release()
            self._state = "stopped"
            logger.info("relay %s stopped published=%d", self.name, self._published)

    def wake(self) -> None:
        """Take the next step now rather than after ``poll_interval``: for a writer in this
        process that just committed a row (a backoff still runs its course)."""
        self._wake.set()

    def _wait(self, delay: float, stop: threading.Event, listener: _Listener | None) -> None:
        deadline = time.monotonic() + delay
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._woken():
                return
            if listener is None:
                self._wake.wait(min(remaining, _SLICE))
                continue
            notified = listener.wait(min(remaining, _SLICE))
            self._listening = listener.connected
            if notified:
                return
            if not listener.connected:
                self._wake.wait(min(remaining, _SLICE))

    def _woken(self) -> bool:
        """True once after each :meth:`wake` (cleared before the step it asks for, so a wake
        during that step is not lost)."""
        if not self._wake.is_set():
            return False
        self._wake.clear()
        return True

    def start(self) -> Self:
        """Relay in a daemon thread named after the relay."""
        if self._stopped:
            raise LifecycleError("a stopped relay cannot be started again; create a new one")
        if self._thread is not None:
            raise LifecycleError("the relay is already running")
        self._thread = threading.Thread(
            target=self.run, args=(self._stop,), name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in flight and stop; idempotent."""
        self._stopped = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def database_error(engine: Engine, action: str, err: SQLAlchemyError) -> OutboxError:
    """The :class:`OutboxError` for a failed ``action`` on the outbox table: the database (its
    password masked) and the first line of what it said; retriable when waiting may help."""
    # A database that is down or restarting: waiting may help. A missing table will not.
    retriable = isinstance(err, OperationalError | InterfaceError)
    return OutboxError(
        f"cannot {action} in {OUTBOX.name} at {masked_url(engine)}: "
        f"{type(err).__name__}: {str(err).splitlines()[0][:300]}",
        retriable=retriable,
    )


def _event(row_id: int, payload: str) -> Event:
    try:
        return decode_event(payload.encode())
    except RecordError as err:
        # Skipping the row would drop a revocation without a trace: stop here, loudly, and
        # let the oldest-pending age raise the alarm. Only hand-made rows can get here.
        raise OutboxError(
            f"outbox row {row_id} holds no valid event ({err.reason}: {err.detail}); "
            "repair or delete it, the relay will not skip a revocation",
            retriable=False,
        ) from err


class _FileLock:
    """The SQLite relay lock: ``flock`` on ``<database>.relay-lock``; the kernel frees it when
    its process dies, so a crashed relay never blocks its successor."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    @classmethod
    def for_engine(cls, engine: Engine) -> _FileLock | None:
        database = engine.url.database
        if engine.dialect.name != "sqlite" or not database or database == ":memory:":
            return None
        return cls(os.path.abspath(database) + ".relay-lock")

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        logger.info("holding the SQLite lock %s", self.path)
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def _can_listen(engine: Engine) -> bool:
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
        return True
    if engine.dialect.name == "postgresql":
        logger.warning(
            "relay polls every poll_interval: LISTEN needs the psycopg driver, not %s",
            engine.dialect.driver,
        )
    return False


class _Listener:
    """LISTEN on the outbox channel through one psycopg connection taken from the engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._raw: PoolProxiedConnection | None = None

    @property
    def connected(self) -> bool:
        return self._raw is not None

    def wait(self, timeout: float) -> bool:
        """True when a notification arrived within ``timeout`` seconds."""
        import psycopg

        try:
            if self._raw is None:
                self._raw = self._engine.raw_connection()
                driver = self._raw.driver_connection
                assert isinstance(driver, psycopg.Connection)
                driver.autocommit = True
                driver.execute(f"LISTEN {NOTIFY_CHANNEL}")
            driver = self._raw.driver_connection
            assert isinstance(driver, psycopg.Connection)
            return any(True for _ in driver.notifies(timeout=timeout, stop_after=1))
        except (psycopg.Error, SQLAlchemyError) as err:
            logger.warning("relay LISTEN connection lost, polling until it is back: %s", err)
            self.close()
            return False

    def close(self) -> None:
        if self._raw is not None:
            # Discarded, not returned: a pooled connection must not keep LISTEN and autocommit.
            self._raw.invalidate()
            self._raw = None


class OutboxRelayCollector(Collector):
    """Collects ``jwt_revocation_outbox_*`` metrics from relays, read when scraped."""

    def __init__(self, *relays: OutboxRelay) -> None:
        self.relays = relays

    def collect(self) -> Iterator[Metric]:
        """Build every metric from one ``status()`` of each relay."""
        labels = ["relay"]
        pending = GaugeMetricFamily(
            "jwt_revocation_outbox_pending_rows", "Outbox rows not yet published", labels=labels
        )
        oldest = GaugeMetricFamily(
            "jwt_revocation_outbox_oldest_pending_seconds",
            "Age of the oldest outbox row not yet published",
            labels=labels,
        )
        published = CounterMetricFamily(
            "jwt_revocation_outbox_published", "Rows this relay published", labels=labels
        )
        failures = CounterMetricFamily(
            "jwt_revocation_outbox_publish_failures",
            "Batches the broker did not acknowledge",
            labels=labels,
        )
        database = CounterMetricFamily(
            "jwt_revocation_outbox_database_errors",
            "Steps that could not read or mark the outbox table",
            labels=labels,
        )
        for relay in self.relays:
            status = relay.status()
            name = [relay.name]
            if status["pending_rows"] is not None:
                pending.add_metric(name, float(status["pending_rows"]))
                oldest.add_metric(name, float(status["oldest_pending_seconds"] or 0.0))
            published.add_metric(name, float(status["published"]))
            failures.add_metric(name, float(status["publish_failures"]))
            database.add_metric(name, float(status["database_errors"]))
        yield from (pending, oldest, published, failures, database)


def render_relay_metrics(*relays: OutboxRelay) -> bytes:
    """The Prometheus text format of relays' metrics."""
    registry = CollectorRegistry()
    registry.register(OutboxRelayCollector(*relays))
    return generate_latest(registry)


def status_answer(relay: OutboxRelay) -> tuple[int, dict[str, Any]]:
    """``GET /v1/status``: :meth:`OutboxRelay.status` (it reads the database), with 200 unless
    the relay is backing off or cannot read its table (503)."""
    status = relay.status()
    healthy = status["state"] != "backing_off" and status["pending_rows"] is not None
    return 200 if healthy else 503, status


def _utc(value: datetime) -> datetime:
    """SQLite keeps no zone; the outbox writes UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class OutboxRelayHTTPServer(BackgroundHTTPServer):
    """Serves a relay's health, status and metrics from a background thread (loopback only
    unless allowed).

    ``GET /healthz`` 200 while the process runs; ``GET /v1/status`` :meth:`OutboxRelay.status`
    as JSON, 200 unless the relay is backing off or cannot read its table (503);
    ``GET /metrics`` the Prometheus text format (with the connections refused: every
    connection is held to ``limits``, an :class:`~jwt_revocation.shared.HTTPLimits`).
    """

    def __init__(
        self,
        relay: OutboxRelay,
        *,
        host: str = "127.0.0.1",
        port: int = 8082,
        allow_remote: bool = False,
        limits: HTTPLimits | None = None,
    ) -> None:
        self.relay = relay
        app = json_app(
            [
                Route("/healthz", self._healthz, methods=["GET"]),
                Route("/v1/status", self._status, methods=["GET"]),
                Route("/metrics", self._metrics, methods=["GET"]),
            ]
        )
        super().__init__(
            app,
            host=host,
            port=port,
            name=f"{relay.name}-http",
            allow_remote=allow_remote,
            remote_warning="the status names the database; put your own access control in front",
            limits=limits,
        )

    async def _healthz(self, request: Request) -> Response:
        return json_response(200, {"status": "alive"})

    async def _status(self, request: Request) -> Response:
        return json_response(*await run_in_threadpool(status_answer, self.relay))

    async def _metrics(self, request: Request) -> Response:
        body = await run_in_threadpool(render_relay_metrics, self.relay)
        return Response(
            body + self.http_metrics(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )
