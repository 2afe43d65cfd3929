"""The one reader of timestamp claims: ``exp``, ``iat``, ``nbf``, a SET's ``iat`` and
``event_timestamp``, a logout token's ``iat`` and ``exp``, and instants given as seconds.

:func:`numeric_date` accepts what RFC 7519 section 2 calls a NumericDate, a JSON number, and
nothing else:

- finite numbers only: ``inf``, ``-inf`` and ``nan`` are refused (Python's ``json`` reads
  ``Infinity`` and ``NaN``, so a token can carry them);
- ``True`` and ``False`` are refused, though Python counts them as integers;
- numeric strings (``"1700000000"``) are refused. PyJWT's own ``exp``/``iat``/``nbf`` checks
  accept them (they call ``int()``, which reads ``"1700000000"`` and ``True``); a string is
  still no NumericDate, and reading it as one here would let the revocation check compare a
  value PyJWT never compared. So a token whose claim PyJWT took as a string is refused by
  the code after PyJWT (fail closed);
- an integer too large for a float (``10**400``, which JSON can carry) is refused, not an
  ``OverflowError``.

Integers within 2**53 come back unchanged (exact); any other accepted number comes back as its
float. Callers raise their own error when it answers None (``jwt.InvalidTokenError`` in the
verifier, :class:`RecordError` for a SET, ``LogoutTokenError`` in the receiver,
:class:`InvalidEventError` for an argument), each saying which claim was wrong.
"""

from __future__ import annotations

import math

EXACT_SECONDS_LIMIT = 2**53
"""Integers strictly within this (either sign) are exact as floats and returned unchanged."""


def numeric_date(value: object) -> float | None:
    """``value`` as seconds since the epoch when it is a NumericDate, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None  # a string, a bool, None, a list, ...
    if type(value) is int and -EXACT_SECONDS_LIMIT < value < EXACT_SECONDS_LIMIT:
        return value
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond the float range
        return None
    return seconds if math.isfinite(seconds) else None
