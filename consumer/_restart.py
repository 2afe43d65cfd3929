"""The consumer thread's restart budget: how long to wait after a crash, and when to give up.

Rule 8 of the sidecar's contract, as a small part that needs no broker (tests drive it with a
fake clock):

- After a crash the thread starts a new consumer once a backoff has passed: ``backoff``, then
  twice that, four times, ... never more than :data:`MAX_BACKOFF` (30 s).
- Failures count while they are CONSECUTIVE. A run (one consumer, from its start to its crash)
  that lasted :data:`HEALTHY_RUN` seconds (60 s) was healthy: the next crash counts as the first
  again, and its backoff is ``backoff`` again. Crashes far apart (an hour, a week) therefore
  never add up to a failed sidecar.
- The crash that makes ``max_restarts + 1`` consecutive failures exhausts the budget: the
  sidecar gives up, its status is ``failed`` and verification fails closed.

Why 60 s: a crash loop's runs are short. A record that crashes the consumer crashes it at the
first poll after the start, well under a second; a start that fails gives up within its own
timeouts (10 s to connect, 10 s to find the partitions, 10 s per offset lookup). Sixty seconds
is longer than any of those and twice the longest backoff, and short enough that a consumer
that ran for a minute has shown it works. With the defaults (``max_restarts=10``, 0.5 s
backoff) a crash loop exhausts the budget after 0.5 + 1 + 2 + 4 + 8 + 16 + 4 x 30 = 151.5 s of
backoff; a consumer that crashes once a minute or less often runs forever, each crash logged
at ERROR with its traceback and counted in ``jwt_revocation_restarts``.

A failure whose only cause is that the brokers cannot be reached (:func:`unreachable`) is
not a crash loop and never exhausts the budget: a Kafka outage is waited out, however long,
and the sidecar recovers by itself when the brokers answer again. Before this rule every
sidecar of a fleet failed for good about 4-5 minutes into an outage (the 151.5 s of backoff
above plus ten starts failing within their timeouts) and stayed failed after Kafka came back,
until each process was restarted. :meth:`RestartBudget.unreachable` answers such a failure:
the next start waits ``backoff``, doubling up to :data:`MAX_BACKOFF`, and stays there while
the outage lasts; the count of consecutive crashes is left as it was (neither raised nor
reset). Meanwhile the sidecar fails closed as usual: ``loading`` until its first replay ends,
then ``degraded`` and, after ``max_staleness`` without contact, ``stale``; its status detail
says since when the brokers are unreachable and how often it retries, logged at ERROR once
per :data:`OUTAGE_REPORT_INTERVAL` (60 s), not at every attempt.

Which failures are connectivity: :class:`KafkaAccessError` with reason ``unreachable`` (the
bootstrap found nothing that answers: refused, timed out, unknown host), and kafka-python's
``KafkaConnectionError`` (a connection lost), ``KafkaTimeoutError`` (a lookup of partitions or
offsets that got no answer within its 10 s), ``NodeNotReadyError``, ``RequestTimedOutError``,
``NoBrokersAvailable`` (older kafka-python) - wherever the error or its cause is one of these.
Everything else keeps the budget: a record or a bug that crashes the consumer crashes it
again at each start, so retrying for ever would hide it. A broker that refuses this client's
certificate or credentials (``KafkaAccessError`` with another reason) also keeps it: it
answered, so Kafka is up, and a wrong credential is not fixed by waiting but by a new
deployment, which restarts the process (an ACL that denies READ is fatal at once, see
``_reader``).

The clock paces, it does not compare instants: :func:`time.monotonic` by default, so a test
that freezes the sidecar's clock still restarts on time.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from jwt_revocation.shared import Clock, ConfigurationError, KafkaAccessError
from jwt_revocation.shared._arguments import require_count

MAX_BACKOFF = 30.0
"""The longest wait, in seconds, before a new consumer starts."""

HEALTHY_RUN = 60.0
"""Seconds a consumer must run before its crash no longer counts against the budget."""

OUTAGE_REPORT_INTERVAL = 60.0
"""Seconds between two ERROR log lines while the brokers stay unreachable."""


@functools.cache
def _unreachable_errors() -> tuple[type[BaseException], ...]:
    """kafka-python's errors that say only that no broker answered (imported on the first
    crash: by then a client has loaded kafka-python)."""
    from kafka import errors as kafka_errors

    return tuple(
        error
        for name in (
            "KafkaConnectionError",
            "KafkaTimeoutError",
            "NodeNotReadyError",
            "RequestTimedOutError",
            "NoBrokersAvailable",  # kafka-python 2.x; 3.x raises KafkaTimeoutError at bootstrap
        )
        if isinstance(error := getattr(kafka_errors, name, None), type)
    )


def unreachable(err: BaseException) -> bool:
    """True when ``err`` (or an error it was raised from) says only that the brokers could
    not be reached: waiting for them is the fix, not giving up."""
    seen: BaseException | None = err
    for _ in range(8):  # a cause chain is short; bound it against a cycle
        if seen is None:
            return False
        if isinstance(seen, KafkaAccessError):
            return seen.reason == "unreachable"
        if isinstance(seen, _unreachable_errors()):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass(frozen=True)
class Retry:
    """What :meth:`RestartBudget.unreachable` answers for one failed attempt in an outage."""

    backoff: float
    """Seconds to wait before the next start."""
    attempt: int
    """Failed attempts since the outage began (1 for the first)."""
    outage: float
    """Seconds since the outage began (its first failed attempt), by the budget's clock."""
    report: bool
    """Log it at ERROR now: the first attempt, then once per :data:`OUTAGE_REPORT_INTERVAL`."""


# 2**32 times any positive backoff is far past MAX_BACKOFF; a larger exponent could overflow.
_MAX_DOUBLINGS = 32


class RestartBudget:
    """Counts a consumer thread's consecutive crashes and says how long to back off."""

    def __init__(
        self,
        *,
        max_restarts: int,
        backoff: float,
        healthy_after: float = HEALTHY_RUN,
        clock: Clock = time.monotonic,
    ) -> None:
        require_count(max_restarts, name="max_restarts", minimum=0)
        if isinstance(backoff, bool) or not isinstance(backoff, int | float) or not backoff >= 0:
            raise ConfigurationError(
                f"restart_backoff must be a number of seconds, 0 or more; got {backoff!r}"
            )
        if not healthy_after > 0:
            raise ConfigurationError(f"healthy_after must be positive; got {healthy_after!r}")
        self.max_restarts = max_restarts
        self.backoff = float(backoff)
        self.healthy_after = healthy_after
        self.failures = 0
        """Consecutive crashes so far (0 after a healthy run)."""
        self._clock = clock
        self._started_at: float | None = None
        self._outage_began: float | None = None
        self._outage_attempts = 0
        self._reported_at = 0.0

    def started(self) -> None:
        """A new consumer starts now."""
        self._started_at = self._clock()

    def crashed(self) -> float | None:
        """The consumer started last crashed now: seconds to wait before the next one, or None
        when the budget is exhausted and the thread must give up."""
        started = self._started_at
        if started is not None and self._clock() - started >= self.healthy_after:
            self.failures = 0
        self._outage_began = None
        self.failures += 1
        if self.failures > self.max_restarts:
            return None
        return self._backoff(self.failures)

    def unreachable(self) -> Retry:
        """The consumer started last failed because the brokers cannot be reached: never
        exhausts the budget; the backoff doubles up to :data:`MAX_BACKOFF` and stays there."""
        now = self._clock()
        started = self._started_at
        if started is not None and now - started >= self.healthy_after:
            self.failures = 0
        if self._outage_began is None:
            self._outage_began = now
            self._outage_attempts = 0
            self._reported_at = now - OUTAGE_REPORT_INTERVAL
        self._outage_attempts += 1
        report = now - self._reported_at >= OUTAGE_REPORT_INTERVAL
        if report:
            self._reported_at = now
        return Retry(
            backoff=self._backoff(self._outage_attempts),
            attempt=self._outage_attempts,
            outage=now - self._outage_began,
            report=report,
        )

    def reached(self) -> None:
        """The brokers answered: an outage, if one was under way, is over."""
        self._outage_began = None

    def _backoff(self, attempt: int) -> float:
        doublings = min(attempt - 1, _MAX_DOUBLINGS)
        return min(self.backoff * 2.0**doublings, MAX_BACKOFF)
