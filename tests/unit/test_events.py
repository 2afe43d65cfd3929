"""The event schema: wire round trips, every RecordError kind, instants and identifiers."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import pydantic
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jwt_revocation.consumer import RevocationState
from jwt_revocation.consumer._redis_blocklist import _reason
from jwt_revocation.shared import (
    EVENT_TYPES,
    MAX_RECORD_BYTES,
    SCHEMA_VERSION,
    AllTokensRevoked,
    Event,
    InvalidEventError,
    RecordError,
    RecordReason,
    RevocationError,
    RevocationReason,
    SessionRevoked,
    TokenRevoked,
    UserDeleted,
    UserTokensRevoked,
    decode_event,
    encode_event,
)
from jwt_revocation.shared._events import to_datetime

T0 = datetime(2027, 1, 15, 12, 0, 0, 250_000, tzinfo=UTC)
"""A fixed instant with a sub-second part, so second rounding would show."""


def _token_revoked(**overrides: Any) -> TokenRevoked:
    fields: dict[str, Any] = {
        "issuer": "auth-service",
        "occurred_at": T0,
        "jti": "3f1c0a4e-jti",
        "user_id": "user-42",
        "expires_at": T0 + timedelta(minutes=15),
    }
    return TokenRevoked(**(fields | overrides))


def _user_tokens_revoked(**overrides: Any) -> UserTokensRevoked:
    fields: dict[str, Any] = {
        "issuer": "auth-service",
        "occurred_at": T0,
        "user_id": "user-42",
        "not_before": T0 - timedelta(seconds=1),
    }
    return UserTokensRevoked(**(fields | overrides))


def _user_deleted(**overrides: Any) -> UserDeleted:
    fields: dict[str, Any] = {
        "issuer": "auth-service",
        "occurred_at": T0,
        "user_id": "user-42",
        "at": T0,
    }
    return UserDeleted(**(fields | overrides))


ALL_EVENTS: list[Event] = [_token_revoked(), _user_tokens_revoked(), _user_deleted()]
EVENT_IDS = ["token_revoked", "user_tokens_revoked", "user_deleted"]


def _wire_dict(event: Event) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(encode_event(event))
    return value


def _to_wire(value: object) -> bytes:
    return json.dumps(value).encode()


def _record_error(value: bytes | None) -> RecordError:
    with pytest.raises(RecordError) as caught:
        decode_event(value)
    return caught.value


# -- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("event", ALL_EVENTS, ids=EVENT_IDS)
def test_round_trip_gives_an_equal_event_of_the_same_type(event: Event) -> None:
    wire = encode_event(event)

    decoded = decode_event(wire)

    assert isinstance(wire, bytes)
    assert type(decoded) is type(event)
    assert decoded == event
    assert encode_event(decoded) == wire


@pytest.mark.parametrize("event", ALL_EVENTS, ids=EVENT_IDS)
def test_wire_form_is_a_compact_json_object_with_type_and_version(event: Event) -> None:
    wire = encode_event(event)
    value = json.loads(wire.decode("utf-8"))

    assert isinstance(value, dict)
    assert value["type"] == event.type
    assert value["schema_version"] == SCHEMA_VERSION == 1
    assert value["event_id"] == event.event_id
    assert b"\n" not in wire
    assert b", " not in wire


def test_round_trip_keeps_the_instant_of_non_utc_datetimes() -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2027, 1, 15, 14, 0, 0, 123_456, tzinfo=plus_two)
    event = _user_tokens_revoked(not_before=local, occurred_at=local)

    decoded = decode_event(encode_event(event))

    assert isinstance(decoded, UserTokensRevoked)
    assert decoded.not_before == local
    assert decoded.not_before.timestamp() == local.timestamp()
    assert decoded.not_before.astimezone(UTC) == datetime(2027, 1, 15, 12, 0, 0, 123_456, UTC)


def test_round_trip_keeps_non_ascii_identifiers() -> None:
    event = _token_revoked(jti="jtï-😀", user_id="ユーザー")

    assert decode_event(encode_event(event)) == event


def test_each_event_gets_its_own_event_id() -> None:
    first, second = _user_deleted(), _user_deleted()

    assert first.event_id != second.event_id
    assert len(first.event_id) >= 1


def test_event_id_is_generated_when_the_record_has_none() -> None:
    wire = _wire_dict(_user_deleted())
    del wire["event_id"]

    decoded = decode_event(_to_wire(wire))

    assert isinstance(decoded, UserDeleted)
    assert decoded.event_id


@pytest.mark.parametrize("event", ALL_EVENTS, ids=EVENT_IDS)
def test_unknown_extra_fields_are_ignored(event: Event) -> None:
    wire = _wire_dict(event)
    wire["added_by_a_newer_publisher"] = {"nested": [1, 2, 3], "flag": True}
    wire["reason"] = "password_change"

    decoded = decode_event(_to_wire(wire))

    assert decoded == event
    assert "added_by_a_newer_publisher" not in json.loads(encode_event(decoded))


# -- RecordError kinds --------------------------------------------------------------------


def test_record_error_carries_kind_and_detail() -> None:
    err = RecordError("invalid", "user_id: Field required")

    assert err.reason == "invalid"
    assert err.detail == "user_id: Field required"
    assert str(err) == "invalid: user_id: Field required"


def test_oversized_record_is_refused_unread() -> None:
    valid = encode_event(_user_deleted())
    padded = valid + b" " * (MAX_RECORD_BYTES + 1 - len(valid))

    err = _record_error(padded)

    assert len(padded) == MAX_RECORD_BYTES + 1
    assert err.reason == "oversized"
    assert str(MAX_RECORD_BYTES) in err.detail


def test_record_of_exactly_the_maximum_size_is_read() -> None:
    event = _user_deleted()
    valid = encode_event(event)
    padded = valid + b" " * (MAX_RECORD_BYTES - len(valid))

    assert len(padded) == MAX_RECORD_BYTES
    assert decode_event(padded) == event


def test_oversized_garbage_is_oversized_not_not_json() -> None:
    assert _record_error(b"\xff" * (MAX_RECORD_BYTES + 1)).reason == "oversized"


def test_none_value_is_not_json() -> None:
    err = _record_error(None)

    assert err.reason == "not_json"
    assert "no value" in err.detail


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json", id="text"),
        pytest.param(b"\xff\xfe\xfd", id="invalid-utf8"),
        pytest.param(b"\xc3\x28", id="invalid-utf8-continuation"),
        pytest.param(b'{"type": "user_deleted"', id="truncated"),
        pytest.param(b"{'type': 'user_deleted'}", id="single-quotes"),
        pytest.param(b"\xef\xbb\xbf{}", id="utf8-bom"),
        pytest.param(b"[" * 5000, id="deep-nesting"),
        pytest.param(b"{} {}", id="trailing-data"),
    ],
)
def test_bytes_that_are_not_json_are_not_json(value: bytes) -> None:
    assert _record_error(value).reason == "not_json"


def test_invalid_utf8_inside_an_otherwise_valid_event_is_not_json() -> None:
    wire = encode_event(_user_deleted(user_id="user-XX"))
    corrupted = wire.replace(b"user-XX", b"user-\xff\xfe")

    assert _record_error(corrupted).reason == "not_json"


def test_trailing_garbage_after_a_valid_event_is_not_json() -> None:
    assert _record_error(encode_event(_user_deleted()) + b"x").reason == "not_json"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param([], id="empty-array"),
        pytest.param([{"type": "user_deleted"}], id="array-of-objects"),
        pytest.param("user_deleted", id="string"),
        pytest.param(42, id="number"),
        pytest.param(None, id="null"),
        pytest.param(True, id="bool"),
    ],
)
def test_json_that_is_not_an_object_is_invalid(value: object) -> None:
    assert _record_error(_to_wire(value)).reason == "invalid"


def test_valid_event_wrapped_in_an_array_is_invalid() -> None:
    wrapped = b"[" + encode_event(_user_deleted()) + b"]"

    assert _record_error(wrapped).reason == "invalid"


@pytest.mark.parametrize("event", ALL_EVENTS, ids=EVENT_IDS)
def test_missing_required_field_is_invalid(event: Event) -> None:
    wire = _wire_dict(event)
    del wire["user_id"]

    err = _record_error(_to_wire(wire))

    assert err.reason == "invalid"
    assert "user_id" in err.detail


def test_missing_type_is_invalid() -> None:
    wire = _wire_dict(_user_deleted())
    del wire["type"]

    assert _record_error(_to_wire(wire)).reason == "invalid"


def test_empty_object_is_invalid() -> None:
    assert _record_error(b"{}").reason == "invalid"


@pytest.mark.parametrize(
    ("field", "bad_value"),
    [
        pytest.param("user_id", True, id="user-id-bool"),
        pytest.param("user_id", ["user-42"], id="user-id-list"),
        pytest.param("user_id", None, id="user-id-null"),
        pytest.param("at", "yesterday", id="at-text"),
        pytest.param("at", "2027-01-15T12:00:00", id="at-naive"),
        pytest.param("at", {"seconds": 1}, id="at-object"),
        pytest.param("occurred_at", "2027-01-15T12:00:00", id="occurred-at-naive"),
        pytest.param("issuer", "", id="issuer-empty"),
    ],
)
def test_wrong_shape_of_a_field_is_invalid(field: str, bad_value: object) -> None:
    wire = _wire_dict(_user_deleted())
    wire[field] = bad_value

    err = _record_error(_to_wire(wire))

    assert err.reason == "invalid"
    assert field in err.detail


def test_a_field_of_another_event_type_does_not_fill_a_missing_one() -> None:
    wire = _wire_dict(_user_tokens_revoked())
    wire["at"] = wire.pop("not_before")

    assert _record_error(_to_wire(wire)).reason == "invalid"


@pytest.mark.parametrize(
    "bad_type", ["token_expired", "TOKEN_REVOKED", "", 1, None, ["user_deleted"]]
)
def test_unknown_type_is_unknown_type(bad_type: object) -> None:
    wire = _wire_dict(_user_deleted())
    wire["type"] = bad_type

    err = _record_error(_to_wire(wire))

    assert err.reason == "unknown_type"


@pytest.mark.parametrize("event", ALL_EVENTS, ids=EVENT_IDS)
@pytest.mark.parametrize("version", [0, 2, 99, -1, "2"])
def test_other_schema_version_is_unsupported_version(event: Event, version: object) -> None:
    wire = _wire_dict(event)
    wire["schema_version"] = version

    err = _record_error(_to_wire(wire))

    assert err.reason == "unsupported_version"
    assert "schema_version" in err.detail


def test_unsupported_version_wins_over_missing_fields() -> None:
    err = _record_error(_to_wire({"type": "user_deleted", "schema_version": 2}))

    assert err.reason == "unsupported_version"


def test_missing_schema_version_means_version_one() -> None:
    event = _user_deleted()
    wire = _wire_dict(event)
    del wire["schema_version"]

    assert decode_event(_to_wire(wire)) == event


# -- to_datetime --------------------------------------------------------------------------


def test_to_datetime_converts_epoch_seconds_to_aware_utc() -> None:
    converted = to_datetime(1_800_000_000.5, name="at")

    assert converted == datetime(2027, 1, 15, 8, 0, 0, 500_000, tzinfo=UTC)
    assert converted.tzinfo is UTC


def test_to_datetime_accepts_int_seconds() -> None:
    assert to_datetime(0, name="at") == datetime(1970, 1, 1, tzinfo=UTC)


def test_to_datetime_converts_aware_datetimes_to_utc() -> None:
    minus_five = timezone(timedelta(hours=-5))
    local = datetime(2027, 1, 15, 7, 0, tzinfo=minus_five)

    converted = to_datetime(local, name="at")

    assert converted == local
    assert converted.utcoffset() == timedelta(0)
    assert converted.hour == 12


def test_to_datetime_rejects_naive_datetimes() -> None:
    with pytest.raises(InvalidEventError, match="not_before must be timezone-aware"):
        to_datetime(datetime(2027, 1, 15, 12, 0), name="not_before")


@pytest.mark.parametrize("value", [True, False])
def test_to_datetime_rejects_bools(value: bool) -> None:
    with pytest.raises(InvalidEventError, match="got bool"):
        to_datetime(value, name="expires_at")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("2027-01-15T12:00:00Z", id="str"),
        pytest.param(None, id="none"),
        pytest.param(timedelta(seconds=5), id="timedelta"),
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
        pytest.param(-math.inf, id="minus-inf"),
        pytest.param(10**20, id="huge-int"),
    ],
)
def test_to_datetime_rejects_values_that_are_no_instant(value: Any) -> None:
    with pytest.raises(InvalidEventError):
        to_datetime(value, name="at")


def test_invalid_event_error_is_a_value_error_and_a_revocation_error() -> None:
    with pytest.raises(InvalidEventError) as caught:
        to_datetime(datetime(2027, 1, 15), name="at")

    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, RevocationError)


# -- identifiers --------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["jti", "user_id", "issuer", "event_id"])
def test_identifier_of_512_characters_is_accepted(field: str) -> None:
    event = _token_revoked(**{field: "x" * 512})

    assert getattr(event, field) == "x" * 512
    assert decode_event(encode_event(event)) == event


@pytest.mark.parametrize("field", ["jti", "user_id", "issuer", "event_id"])
@pytest.mark.parametrize("value", ["", "x" * 513], ids=["empty", "513-chars"])
def test_identifier_out_of_bounds_is_rejected_when_built(field: str, value: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        _token_revoked(**{field: value})

    assert caught.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize("field", ["jti", "user_id", "issuer", "event_id"])
@pytest.mark.parametrize("value", ["", "x" * 513], ids=["empty", "513-chars"])
def test_identifier_out_of_bounds_is_invalid_when_decoded(field: str, value: str) -> None:
    wire = _wire_dict(_token_revoked())
    wire[field] = value

    err = _record_error(_to_wire(wire))

    assert err.reason == "invalid"
    assert field in err.detail


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: _user_tokens_revoked(user_id=""), id="user_tokens_revoked"),
        pytest.param(lambda: _user_deleted(user_id="u" * 513), id="user_deleted"),
    ],
)
def test_user_events_check_user_id_bounds_too(build: Any) -> None:
    with pytest.raises(pydantic.ValidationError):
        build()


def test_naive_datetime_is_rejected_when_built() -> None:
    with pytest.raises(pydantic.ValidationError):
        _user_deleted(at=datetime(2027, 1, 15, 12, 0))


# -- fuzz ---------------------------------------------------------------------------------

_EVENT_TYPES = (TokenRevoked, UserTokensRevoked, UserDeleted)

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
_fields = st.sampled_from(
    [
        "type",
        "schema_version",
        "event_id",
        "issuer",
        "occurred_at",
        "jti",
        "user_id",
        "expires_at",
        "not_before",
        "at",
    ]
)
_interesting_values = st.one_of(
    _json_values,
    st.sampled_from(
        [
            "token_revoked",
            "user_tokens_revoked",
            "user_deleted",
            1,
            2,
            1.0,
            True,
            "",
            "x" * 513,
            "2027-01-15T12:00:00",
            "2027-01-15T12:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-23:59",
            1e300,
            -(10**30),
        ]
    ),
)


@st.composite
def _valid_events(draw: st.DrawFn) -> Event:
    identifiers = st.text(min_size=1, max_size=16)
    instants = st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    )
    envelope: dict[str, Any] = {"issuer": draw(identifiers), "occurred_at": draw(instants)}
    kind = draw(st.sampled_from(_EVENT_TYPES))
    if kind is TokenRevoked:
        return TokenRevoked(
            **envelope, jti=draw(identifiers), user_id=draw(identifiers), expires_at=draw(instants)
        )
    if kind is UserTokensRevoked:
        return UserTokensRevoked(**envelope, user_id=draw(identifiers), not_before=draw(instants))
    return UserDeleted(**envelope, user_id=draw(identifiers), at=draw(instants))


@st.composite
def _mutated_events(draw: st.DrawFn) -> bytes:
    event = draw(_valid_events())
    wire = _wire_dict(event)
    mutation = draw(st.sampled_from(["drop", "set", "add", "none", "bytes"]))
    if mutation == "drop":
        wire.pop(draw(st.sampled_from(sorted(wire))))
    elif mutation == "set":
        wire[draw(_fields)] = draw(_interesting_values)
    elif mutation == "add":
        wire[draw(st.text(max_size=8))] = draw(_json_values)
    raw = _to_wire(wire)
    if mutation == "bytes":
        position = draw(st.integers(0, len(raw) - 1))
        action = draw(st.sampled_from(["truncate", "flip", "insert"]))
        if action == "truncate":
            return raw[:position]
        byte = draw(st.integers(0, 255)).to_bytes(1, "big")
        if action == "flip":
            return raw[:position] + byte + raw[position + 1 :]
        return raw[:position] + byte + raw[position:]
    return raw


_records = st.one_of(
    st.binary(max_size=64),
    _json_values.map(_to_wire),
    _mutated_events(),
    _mutated_events(),
    _mutated_events(),
    st.none(),
    st.integers(MAX_RECORD_BYTES - 1, MAX_RECORD_BYTES + 1).map(lambda size: b"{" * size),
)


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_records)
def test_fuzz_decode_event_returns_an_event_or_raises_record_error(value: bytes | None) -> None:
    outcome: Event | RecordError
    try:
        outcome = decode_event(value)
    except RecordError as err:
        outcome = err

    if isinstance(outcome, RecordError):
        event(outcome.reason)
        assert outcome.reason in get_args(RecordReason)
        assert outcome.detail
        return
    event(outcome.type)
    assert type(outcome) in _EVENT_TYPES
    assert outcome.schema_version == SCHEMA_VERSION
    assert decode_event(encode_event(outcome)) == outcome


def test_the_event_types_are_read_from_the_models_once_and_used_everywhere() -> None:
    models = (TokenRevoked, UserTokensRevoked, UserDeleted, SessionRevoked, AllTokensRevoked)
    assert tuple(model.model_fields["type"].default for model in models) == EVENT_TYPES
    # The Literal type checkers read cannot be derived; it must name the same words.
    assert get_args(RevocationReason) == EVENT_TYPES
    assert tuple(RevocationState(max_token_lifetime=60, max_clock_skew=0).counts()) == EVENT_TYPES
    assert [_reason(kind.encode()) for kind in EVENT_TYPES] == list(EVENT_TYPES)
