"""One reader of timestamp claims: numeric_date, and every caller reads by its rule."""

from __future__ import annotations

import sys
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jwt_revocation.consumer import InMemoryRevocations, RevocationVerifier
from jwt_revocation.producer import LogoutTokenError
from jwt_revocation.producer._backchannel import _numeric as logout_claim
from jwt_revocation.shared import InvalidEventError, RecordError, numeric_date
from jwt_revocation.shared._events import to_datetime
from jwt_revocation.shared._numeric_date import EXACT_SECONDS_LIMIT
from jwt_revocation.shared._security_events import _instant as set_claim

VALUES = st.one_of(
    st.integers(),
    st.integers(min_value=2**52, max_value=2**1100),
    st.integers(min_value=-(2**1100), max_value=-(2**52)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.from_regex(r"-?[0-9]{1,12}(\.[0-9]{1,3})?", fullmatch=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
"""What a JSON claim can hold, and the values near every edge of the rule."""

LARGEST_SECONDS = 1e11  # a SET's own bound: larger NumericDates are milliseconds


def _is_finite_json_number(value: object) -> bool:
    """The rule, said another way: an int or float (not a bool) of a finite float's size."""
    return (
        type(value) in (int, float)
        and value == value  # not nan
        and -sys.float_info.max <= value <= sys.float_info.max  # type: ignore[operator]
    )


@given(VALUES)
def test_numeric_date_accepts_exactly_the_finite_json_numbers(value: Any) -> None:
    seconds = numeric_date(value)

    if not _is_finite_json_number(value):
        assert seconds is None
        return
    assert seconds == float(value)
    if type(value) is int and abs(value) < EXACT_SECONDS_LIMIT:
        assert seconds is value  # exact, unchanged


def _verifier_reads(value: Any) -> bool:
    verifier = RevocationVerifier(
        InMemoryRevocations(max_token_lifetime=3600), key="k" * 32, algorithms=["HS256"]
    )
    try:
        verifier.check_claims({"iat": value, "exp": value})
    except jwt.InvalidTokenError:
        return False
    return True


def _set_reads(value: Any) -> bool:
    try:
        set_claim(value, "iat")
    except RecordError:
        return False
    return True


def _logout_reads(value: Any) -> bool:
    try:
        logout_claim({"iat": value}, "iat")
    except LogoutTokenError:
        return False
    return True


def _argument_reads(value: Any) -> bool:
    try:
        to_datetime(value, name="issued_at")
    except InvalidEventError:
        return False
    return True


READERS = [_verifier_reads, _set_reads, _logout_reads, _argument_reads]


@pytest.mark.parametrize("reads", READERS, ids=lambda reads: reads.__name__)
@given(value=VALUES)
def test_every_timestamp_claim_is_read_by_the_one_rule(reads: Any, value: Any) -> None:
    """What numeric_date refuses, every caller refuses; within the range every caller takes
    (a SET's is the narrowest: 0 to 1e11 seconds), every caller accepts what it accepts."""
    accepted = numeric_date(value) is not None

    if not accepted:
        assert not reads(value)
    elif 0 <= value < LARGEST_SECONDS:
        assert reads(value)


@pytest.mark.parametrize("reads", READERS, ids=lambda reads: reads.__name__)
@pytest.mark.parametrize(
    "value",
    [float("inf"), float("-inf"), float("nan"), True, False, "1800000000", 10**400, None],
    ids=repr,
)
def test_infinities_bools_strings_and_huge_ints_are_refused_everywhere(
    reads: Any, value: Any
) -> None:
    assert not reads(value)
