"""A sidecar's health: one phase, a few facts beside it, and the one rule that turns them into a status.

:class:`SidecarHealth` holds what the consumer thread learns (the phase it is in, when it last
heard from the broker, whether it is over capacity or recovering from a crash) and answers two
questions from the same fields: :meth:`SidecarHealth.status` (what the sidecar reports) and
:meth:`SidecarHealth.ensure_usable` (may the state decide a verification now). The second has a
fast path for the usual case, one clock read and no call: a verification pays for it on every
request (benchmark row 1). A property test checks that the fast path and the status agree on
every combination of fields.

While the brokers cannot be reached (rule 8 of the sidecar, :mod:`._restart`), the status is
whatever the phase and contact make it (``loading``, ``degraded``, ``stale``: all but
``degraded`` fail closed, and ``degraded`` only until ``max_staleness``) and its detail says
``brokers unreachable since <UTC time>, retrying every <N> s``, until the broker answers.

It needs no broker: tests drive it with a fake clock.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from jwt_revocation.shared import (
    Clock,
    ConfigurationError,
    SidecarUnavailableError,
    UnavailableReason,
)

logger = logging.getLogger(__name__)


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


_UNAVAILABLE: dict[SidecarStatus, UnavailableReason] = {
    SidecarStatus.NEW: "not_started",
    SidecarStatus.LOADING: "loading",
    SidecarStatus.STALE: "stale",
    SidecarStatus.FAILED: "failed",
    SidecarStatus.OVER_CAPACITY: "over_capacity",
    SidecarStatus.STOPPED: "stopped",
}

STALE_WARNING_INTERVAL = 10.0
"""Seconds between two warnings that a stale state is accepted under ``on_stale="allow"``."""


class SidecarHealth:
    """The phase and the facts a sidecar's status is read from; written by one thread."""

    def __init__(
        self,
        *,
        max_staleness: float,
        on_stale: str = "reject",
        clock: Clock = time.time,
        label: str = "",
        loading_detail: Callable[[], str] = lambda: "loading",
        capacity_detail: Callable[[], str] = lambda: "the state is full",
    ) -> None:
        if on_stale not in ("reject", "allow"):
            raise ConfigurationError(f"on_stale must be 'reject' or 'allow'; got {on_stale!r}")
        self.max_staleness = max_staleness
        self.on_stale = on_stale
        self.label = label
        """``name=... topic=...``, for log lines."""
        self.phase = SidecarStatus.NEW
        self.over_capacity = False
        self.recovering = False
        self.last_contact: float | None = None
        self.last_error: str | None = None
        self.restarts = 0
        self.unreachable_since: float | None = None
        """When a start first failed because no broker answered, by the clock; None once one
        answers."""
        self.retry_every = 0.0
        self._clock = clock
        self._loading_detail = loading_detail
        self._capacity_detail = capacity_detail
        self._last_stale_warning = -STALE_WARNING_INTERVAL

    # -- transitions ---------------------------------------------------------------------

    def start(self) -> None:
        """The consumer thread starts loading."""
        if self.phase is SidecarStatus.NEW:
            self.phase = SidecarStatus.LOADING

    def caught_up(self) -> None:
        """The replay reached the end offsets seen at start."""
        if self.phase is SidecarStatus.LOADING:
            self.phase = SidecarStatus.CAUGHT_UP

    def touch(self) -> None:
        """The broker answered now."""
        self.last_contact = self._clock()
        self.unreachable_since = None
        if self.recovering and self.phase is SidecarStatus.CAUGHT_UP:
            self.recovering = False
            logger.info("sidecar recovered %s", self.label)

    def forked(self) -> None:
        """This is a forked child: no thread reads until one is started here and catches up."""
        if self.phase is SidecarStatus.CAUGHT_UP:
            self.phase = SidecarStatus.LOADING
        self.recovering = False

    def crashed(self, error: str) -> None:
        """The consumer loop raised; the thread will try again."""
        self.restarts += 1
        self.recovering = True
        self.last_error = error

    def unreachable(self, error: str, retry_every: float) -> None:
        """A start failed because no broker answered; the thread retries every ``retry_every``
        seconds for as long as it takes, the status failing closed meanwhile."""
        self.crashed(error)
        if self.unreachable_since is None:
            self.unreachable_since = self._clock()
        self.retry_every = retry_every

    def outage(self) -> str:
        """``brokers unreachable since ..., retrying every N s``, or "" when in contact."""
        since = self.unreachable_since
        if since is None:
            return ""
        when = datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds")
        return f"brokers unreachable since {when}, retrying every {self.retry_every:g} s"

    def fail(self, error: str | None = None) -> None:
        """The thread gave up: verification fails closed for good."""
        if error is not None:
            self.last_error = error
        if self.phase is not SidecarStatus.STOPPED:
            self.phase = SidecarStatus.FAILED

    def stop(self) -> None:
        """``stop()`` was called."""
        self.phase = SidecarStatus.STOPPED

    def full(self, entries: int, max_entries: int) -> None:
        """The state reached ``max_entries``: consumption pauses, verification fails closed."""
        if not self.over_capacity:
            self.over_capacity = True
            logger.error(
                "sidecar OVER CAPACITY %s entries=%d max_entries=%d: consumption paused, "
                "verification fails closed; nothing is evicted",
                self.label,
                entries,
                max_entries,
            )

    def room(self, entries: int, max_entries: int) -> None:
        """Expiry made room again."""
        if self.over_capacity:
            self.over_capacity = False
            logger.warning(
                "sidecar back under capacity %s entries=%d max_entries=%d",
                self.label,
                entries,
                max_entries,
            )

    # -- reading -------------------------------------------------------------------------

    @property
    def is_caught_up(self) -> bool:
        """True once the replay is over (and until the sidecar fails or stops)."""
        return self.phase is SidecarStatus.CAUGHT_UP

    def contact_age(self) -> float | None:
        """Seconds since the broker last answered, or None before it ever did."""
        last = self.last_contact
        return None if last is None else round(self._clock() - last, 3)

    def status(self) -> SidecarStatus:
        """The status right now: the phase, read together with contact, capacity and recovery."""
        phase = self.phase
        if phase is not SidecarStatus.CAUGHT_UP:
            if phase is SidecarStatus.LOADING and self.over_capacity:
                return SidecarStatus.LOADING
            return phase
        if self.over_capacity:
            return SidecarStatus.OVER_CAPACITY
        last = self.last_contact
        if last is None or self._clock() - last > self.max_staleness:
            return SidecarStatus.STALE
        if self.recovering:
            return SidecarStatus.DEGRADED
        return SidecarStatus.CAUGHT_UP

    def ensure_usable(self) -> None:
        """Return if the state can decide now, else raise :class:`SidecarUnavailableError`."""
        last = self.last_contact  # the fast path: one clock read, no method call
        if (
            self.phase is SidecarStatus.CAUGHT_UP
            and not self.over_capacity
            and last is not None
            and self._clock() - last <= self.max_staleness
        ):
            return
        status = self.status()
        if status is SidecarStatus.DEGRADED:
            return
        if status is SidecarStatus.STALE and self.on_stale == "allow":
            self._warn_stale()
            return
        reason = _UNAVAILABLE[status]
        raise SidecarUnavailableError(
            f"revocation state unavailable ({reason}): {self.describe(status)}", reason=reason
        )

    def describe(self, status: SidecarStatus) -> str:
        """One line on why the status is what it is."""
        outage = self.outage()
        reason = self._reason(status)
        if outage and status is not SidecarStatus.STOPPED:
            return f"{reason}; {outage}" if reason else outage
        return reason

    def _reason(self, status: SidecarStatus) -> str:
        if status is SidecarStatus.STALE:
            return (
                f"no contact with the broker for {self.contact_age()} s "
                f"(max_staleness {self.max_staleness} s)"
            )
        if status is SidecarStatus.OVER_CAPACITY:
            return self._capacity_detail()
        if status is SidecarStatus.FAILED:
            return f"consumer thread gave up: {self.last_error}"
        if status is SidecarStatus.LOADING:
            return self._loading_detail()
        if status is SidecarStatus.NEW:
            return "start() has not been called"
        if status is SidecarStatus.STOPPED:
            return "stop() was called"
        return ""

    def _warn_stale(self) -> None:
        now = time.monotonic()
        if now - self._last_stale_warning >= STALE_WARNING_INTERVAL:
            self._last_stale_warning = now
            logger.warning(
                "STALE revocation state accepted because on_stale=allow %s "
                "seconds_since_contact=%s: revocations published since then are NOT enforced",
                self.label,
                self.contact_age(),
            )
