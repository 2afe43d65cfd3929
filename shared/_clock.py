"""The clock every time-comparing component takes, so tests move time instead of sleeping.

A clock returns seconds since the Unix epoch, like :func:`time.time` (the default everywhere).
Components compare instants with it (token ``iat`` against a cutoff, contact age against
``max_staleness``); they pace their own loops with :func:`time.monotonic`, so a test that
freezes or jumps its clock never stalls a thread.
"""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds since the epoch, like :func:`time.time`."""
