"""Integer user ids (Django's ``user.id``) are their decimal text on every side; a bool is none.

The events, the publisher's methods (through :class:`RevocationMethods`, which every front end
shares), the outbox and the verifier agree: user 42 revoked by number revokes the tokens whose
``sub`` is ``"42"``. A wrong user id is one line naming the field, not pydantic's four.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from jwt_revocation.consumer import InMemoryRevocations, RevocationVerifier, TokenRevokedError
from jwt_revocation.producer.outbox import OUTBOX, RevocationMethods, RevocationOutbox
from jwt_revocation.shared import (
    Event,
    InvalidEventError,
    TokenRevoked,
    UserDeleted,
    decode_event,
    encode_event,
)
from jwt_revocation.shared._events import record_key, user_id_text

KEY = "user-ids-test-signing-key-0123456789abcdef"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class Emitted(RevocationMethods[Event]):
    """The publisher's methods with an ``_emit`` that returns the event it was given."""

    issuer = "auth"

    def __init__(self) -> None:
        self._clock = time.time

    def _emit(self, event: Event) -> Event:
        return event


# -- the events --------------------------------------------------------------------------------


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_an_integer_user_id_is_its_decimal_text_in_the_event_and_on_the_wire(number: int) -> None:
    event = UserDeleted(issuer="auth", occurred_at=NOW, user_id=number, at=NOW)  # type: ignore[arg-type]

    assert event.user_id == str(number) == user_id_text(number)
    assert record_key(event) == str(number)
    assert decode_event(encode_event(event)) == event


def test_a_record_with_an_integer_user_id_is_read_as_text() -> None:
    record = (
        b'{"type": "user_deleted", "issuer": "auth", "occurred_at": "2026-05-01T12:00:00Z",'
        b' "user_id": 42, "at": "2026-05-01T12:00:00Z"}'
    )

    assert decode_event(record).user_id == "42"  # type: ignore[union-attr]


@pytest.mark.parametrize("value", [True, False, 4.2, None, ["42"], b"42"])
def test_a_bool_or_any_other_type_is_no_user_id(value: Any) -> None:
    with pytest.raises(InvalidEventError, match="user_id must be a string or an integer"):
        user_id_text(value)
    with pytest.raises(ValueError, match="user_id must be a string or an integer"):
        UserDeleted(issuer="auth", occurred_at=NOW, user_id=value, at=NOW)


# -- the publisher's methods -------------------------------------------------------------------


def test_every_method_takes_an_integer_user_id() -> None:
    methods = Emitted()
    events = [
        methods.password_changed(user_id=42),
        methods.logout_everywhere(user_id=42),
        methods.account_disabled(user_id=42),
        methods.user_deleted(user_id=42),
        methods.logout(jti="j", user_id=42, expires_at=NOW),
        methods.logout_session(user_id=42, session_id="s"),
        methods.revoke_token({"jti": "j", "sub": 42, "exp": NOW.timestamp()}),
    ]

    assert {getattr(event, "user_id", None) for event in events} == {"42"}


def test_a_wrong_user_id_is_one_line_naming_the_field() -> None:
    with pytest.raises(InvalidEventError) as caught:
        Emitted().password_changed(user_id=True)

    message = str(caught.value)
    assert message.startswith("invalid UserTokensRevoked: user_id: ")
    assert "string or an integer" in message
    assert "\n" not in message
    assert "errors.pydantic.dev" not in message


def test_an_empty_user_id_is_one_line_too() -> None:
    with pytest.raises(InvalidEventError, match=r"^invalid UserDeleted: user_id: String should"):
        Emitted().user_deleted(user_id="")


# -- the outbox --------------------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'auth.db'}")
    yield engine
    engine.dispose()


def test_the_outbox_writes_an_integer_user_id_as_text(engine: Engine) -> None:
    outbox = RevocationOutbox(engine, issuer="auth")
    outbox.create_table()

    with Session(engine) as session, session.begin():
        outbox.password_changed(session, user_id=42)

    with engine.connect() as connection:
        key, payload = connection.execute(select(OUTBOX.c.key, OUTBOX.c.payload)).one()
    assert key == "42"
    assert decode_event(payload.encode()).user_id == "42"  # type: ignore[union-attr]


# -- the verifier ------------------------------------------------------------------------------


def test_user_42_revoked_by_number_revokes_the_token_whose_sub_is_the_text_42() -> None:
    revocations = InMemoryRevocations(max_token_lifetime=3600)
    verifier = RevocationVerifier(revocations, key=KEY, algorithms=["HS256"])
    now = time.time()
    token = jwt.encode({"sub": "42", "iat": now - 10, "exp": now + 600}, KEY, algorithm="HS256")
    other = jwt.encode({"sub": "420", "iat": now - 10, "exp": now + 600}, KEY, algorithm="HS256")
    assert verifier.verify(token)["sub"] == "42"

    revocations.apply(Emitted().password_changed(user_id=42))

    with pytest.raises(TokenRevokedError, match="user_tokens_revoked"):
        verifier.verify(token)
    assert verifier.verify(other)["sub"] == "420"
    assert verifier.is_revoked(user_id=42, issued_at=now - 10) == "user_tokens_revoked"
    assert verifier.is_revoked(user_id="42", issued_at=now - 10) == "user_tokens_revoked"
    with pytest.raises(InvalidEventError, match="user_id must be a string or an integer"):
        verifier.is_revoked(user_id=True, issued_at=now - 10)


def test_a_token_revoked_by_jti_keeps_the_integer_users_text() -> None:
    event = Emitted().logout(jti="j", user_id=7, expires_at=NOW)

    assert isinstance(event, TokenRevoked)
    assert (event.user_id, record_key(event)) == ("7", "7")
