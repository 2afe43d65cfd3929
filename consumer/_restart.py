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

The clock paces, it does not compare instants: :func:`time.monotonic` by default, so a test
that freezes the sidecar's clock still restarts on time.
"""

from __future__ import annotations

import time

from jwt_revocation.shared import Clock, ConfigurationError
from jwt_revocation.shared._arguments import require_count

MAX_BACKOFF = 30.0
"""The longest wait, in seconds, before a new consumer starts."""

HEALTHY_RUN = 60.0
"""Seconds a consumer must run before its crash no longer counts against the budget."""

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

    def started(self) -> None:
        """A new consumer starts now."""
        self._started_at = self._clock()

    def crashed(self) -> float | None:
        """The consumer started last crashed now: seconds to wait before the next one, or None
        when the budget is exhausted and the thread must give up."""
        started = self._started_at
        if started is not None and self._clock() - started >= self.healthy_after:
            self.failures = 0
        self.failures += 1
        if self.failures > self.max_restarts:
            return None
        doublings = min(self.failures - 1, _MAX_DOUBLINGS)
        return min(self.backoff * 2.0**doublings, MAX_BACKOFF)
