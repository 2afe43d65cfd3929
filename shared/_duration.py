"""Durations, read the same way everywhere one is accepted.

Every constructor, function and setting that takes a duration accepts a :data:`DurationLike`:
a ``timedelta``, seconds as a number, or text such as ``500ms``, ``90s``, ``15m``, ``1h`` or
``7d``; :func:`parse_duration` is the one parser (:func:`parse_seconds` gives its seconds, for
the many that count in them), and :data:`Duration` is the same parser as a pydantic field
type for the settings.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

from ._errors import ConfigurationError

DurationLike = timedelta | float | str
"""What a duration argument accepts: a timedelta, seconds, or text like ``15m``."""

_LONGEST = timedelta.max.total_seconds()
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object, *, name: str = "duration") -> timedelta:
    """Read a duration: a ``timedelta``, seconds as a number, or text like ``90s``, ``15m``, ``1h``, ``7d``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ConfigurationError(
            f"{name} must be a duration: seconds as a number, or a number and one of the units "
            f"ms, s, m, h, d, as in 90, 90s, 15m, 1h or 7d; got {value!r}"
        )
    if not math.isfinite(seconds) or seconds > _LONGEST:
        raise ConfigurationError(f"{name} must be a finite duration; got {value!r}")
    if seconds < 0:
        raise ConfigurationError(f"{name} must not be negative; got {seconds} s")
    return timedelta(seconds=seconds)


def parse_seconds(value: object, *, name: str, positive: bool = False) -> float:
    """:func:`parse_duration` in seconds; with ``positive``, zero is refused too."""
    seconds = parse_duration(value, name=name).total_seconds()
    if positive and seconds <= 0:
        raise ConfigurationError(f"{name} must be positive; got {value!r}")
    return seconds


def _duration(value: Any) -> timedelta:
    # Pydantic names the field before this message: "max_token_lifetime: Value error, ...".
    return parse_duration(value, name="the value")


Duration = Annotated[timedelta, BeforeValidator(_duration)]
