"""Checks of constructor arguments that several constructors share, so each says the same.

A wrong type is a :class:`ConfigurationError` when the object is built, naming the argument and
what to pass, rather than an ``AttributeError`` or ``TypeError`` from a background thread later
(a sidecar given a Redis URL as ``snapshots`` used to fail at start with ``'str' object has no
attribute 'signed'``).
"""

from __future__ import annotations

from typing import TypeVar

from ._errors import ConfigurationError

T = TypeVar("T")


def require_instance(value: object, kind: type[T], *, name: str, how: str) -> T:
    """``value`` if it is a ``kind``, else a :class:`ConfigurationError` saying ``how`` to
    make one."""
    if not isinstance(value, kind):
        raise _wrong(value, name, how)
    return value


def optional_instance(value: object, kind: type[T], *, name: str, how: str) -> T | None:
    """:func:`require_instance` for an argument that may be None."""
    return None if value is None else require_instance(value, kind, name=name, how=how)


def require_count(value: object, *, name: str, minimum: int) -> int:
    """``value`` if it is an integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an integer; got {type(value).__name__}")
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}; got {value}")
    return value


def require_callable(value: T, *, name: str, how: str) -> T:
    """``value`` if it can be called, else a :class:`ConfigurationError` saying ``how``."""
    if not callable(value):
        raise _wrong(value, name, how)
    return value


def _wrong(value: object, name: str, how: str) -> ConfigurationError:
    # The value itself is not shown: a URL or a key put in the wrong place may hold a secret.
    return ConfigurationError(f"{name} must be {how}; got {type(value).__name__}")
