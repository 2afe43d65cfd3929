"""The revocation events: what the publisher writes to Kafka and every sidecar reads.

Five events, one discriminated union on ``type``:

* ``token_revoked``: one token is dead until it expires (logout); with ``token_issuer``, only
  the token of that ``iss`` with this jti (jtis are unique per issuer only, RFC 7519 4.1.7).
* ``user_tokens_revoked``: every token of a user issued before ``not_before`` is dead
  (password change, "log out everywhere").
* ``user_deleted``: every token of a user issued before ``at`` is dead, and the user is gone.
* ``session_revoked``: every token whose session claim (``sid``) is ``session_id`` and that was
  issued before ``not_before`` is dead (log out of one device: the refresh token, its rotated
  successors and every access token minted from them).
* ``all_tokens_revoked``: every token issued before ``not_before`` is dead, of one
  ``token_issuer`` or of every issuer (incident response).

On the wire an event is one JSON object (UTF-8). The Kafka record key is :func:`record_key`:
the user id, so the events of one user keep their order in one partition; ``*`` for
``all_tokens_revoked``. Order matters to no merge rule, so the key only spreads the load and
keeps one user's events together for people reading the topic. Decoding ignores unknown
fields, so a newer publisher may add fields without breaking older sidecars; an older sidecar
skips a type it does not know as ``unknown_type``.

A user id is text on the wire and in every comparison; an integer given for one (Django's
``user.id``) becomes its decimal text (:func:`user_id_text`), in events built here and in
records read, and a bool is refused.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from ._errors import InvalidEventError, RecordError, RecordReason, RevocationReason
from ._numeric_date import numeric_date

SCHEMA_VERSION: Literal[1] = 1
"""The schema version this package writes and reads."""

MAX_RECORD_BYTES = 64 * 1024
"""Records larger than this are skipped unread, as ``oversized``."""


Identifier = Annotated[str, StringConstraints(min_length=1, max_length=512)]
"""A jti, a user id or an issuer: 1 to 512 characters."""


def user_id_text(value: object, *, name: str = "user_id") -> str:
    """A user id as the text every side compares: a string as it is, an integer (Django's
    ``user.id``) as its decimal text, so user 42 revoked by number matches a token whose
    ``sub`` is ``"42"``. A bool, or anything else, is an :class:`InvalidEventError`."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidEventError(
        f"{name} must be a string or an integer (its decimal text is used); "
        f"got {type(value).__name__}"
    )


UserIdLike = str | int
"""What a user id argument accepts: text, or an integer used as its decimal text."""

UserId = Annotated[Identifier, BeforeValidator(user_id_text)]
"""A user id: an :data:`Identifier`, given as text or as an integer (see :func:`user_id_text`)."""


def _new_event_id() -> str:
    return uuid.uuid4().hex


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Identifier = Field(default_factory=_new_event_id)
    issuer: Identifier
    occurred_at: AwareDatetime


class TokenRevoked(_Envelope):
    """One token is revoked until it expires (logout)."""

    type: Literal["token_revoked"] = "token_revoked"
    jti: Identifier
    user_id: UserId
    expires_at: AwareDatetime
    token_issuer: Identifier | None = None
    """The token's ``iss``: only that issuer's token with this jti is revoked. None revokes
    the jti of every issuer (as events without the field always did)."""


UserTokensCause = Literal["credential_change", "account_disabled"]
"""Why every token of a user was revoked, when it was not a plain "log out everywhere"."""


class UserTokensRevoked(_Envelope):
    """Every token of ``user_id`` issued before ``not_before`` is revoked."""

    type: Literal["user_tokens_revoked"] = "user_tokens_revoked"
    user_id: UserId
    not_before: AwareDatetime
    cause: UserTokensCause | None = None
    """``credential_change`` (password change), ``account_disabled``, or None (log out
    everywhere). It changes nothing in the sidecar; it chooses the Shared Signals event."""


class UserDeleted(_Envelope):
    """The user is deleted: every token of ``user_id`` issued before ``at`` is revoked."""

    type: Literal["user_deleted"] = "user_deleted"
    user_id: UserId
    at: AwareDatetime


class SessionRevoked(_Envelope):
    """Every token of session ``session_id`` issued before ``not_before`` is revoked."""

    type: Literal["session_revoked"] = "session_revoked"
    user_id: UserId
    """The session's user: the record key, and the subject of the Shared Signals event. A
    token is matched by its session claim alone (session ids are unique per issuer)."""
    session_id: Identifier
    not_before: AwareDatetime


class AllTokensRevoked(_Envelope):
    """Every token issued before ``not_before`` is revoked: of ``token_issuer``, or of all."""

    type: Literal["all_tokens_revoked"] = "all_tokens_revoked"
    not_before: AwareDatetime
    token_issuer: Identifier | None = None
    """The ``iss`` whose tokens are revoked; None revokes the tokens of every issuer."""


Event = TokenRevoked | UserTokensRevoked | UserDeleted | SessionRevoked | AllTokensRevoked
"""Any revocation event, as a type: what decoding returns and what a state applies."""

EVENT_TYPES: tuple[RevocationReason, ...] = tuple(
    model.model_fields["type"].default for model in get_args(Event)
)
"""Every event type, read from the models of :data:`Event` in its order: what
:meth:`RevocationState.counts`, the metrics and the Redis check list. The same words are the
:data:`RevocationReason` a revoked token is refused with (a unit test keeps the two equal)."""

RevocationEvent = Annotated[
    TokenRevoked | UserTokensRevoked | UserDeleted | SessionRevoked | AllTokensRevoked,
    Field(discriminator="type"),
]
"""Any of the five events."""

ALL_TOKENS_KEY = "*"
"""The Kafka key of every ``all_tokens_revoked`` event. One fixed key: the merge rules need no
order, the events are rare (incident response), and one key finds them all on the topic."""


def record_key(event: Event) -> str:
    """The Kafka record key of an event: its user id, or :data:`ALL_TOKENS_KEY`."""
    return ALL_TOKENS_KEY if isinstance(event, AllTokensRevoked) else event.user_id


_ADAPTER: TypeAdapter[Event] = TypeAdapter(RevocationEvent)


def encode_event(event: Event) -> bytes:
    """Serialise an event to its wire form (compact UTF-8 JSON)."""
    return event.model_dump_json().encode()


def decode_event(value: bytes | None) -> Event:
    """Parse a record value into an event, or raise :class:`RecordError` saying why not."""
    if value is None:
        raise RecordError("not_json", "the record has no value")
    if len(value) > MAX_RECORD_BYTES:
        raise RecordError("oversized", f"{len(value)} bytes, more than {MAX_RECORD_BYTES}")
    try:
        return _ADAPTER.validate_json(value)
    except ValidationError as err:
        error = _classify(err)
    if error.reason == "not_json" and looks_like_set(value):
        error = RecordError(
            "unexpected_set", "a Security Event Token, and no SET verification is configured"
        )
    raise error


_JWS = re.compile(rb"\s*[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\s*")


def looks_like_set(value: bytes) -> bool:
    """True when a record value has the shape of a compact JWS (three base64url parts)."""
    return _JWS.fullmatch(value) is not None


def _classify(err: ValidationError) -> RecordError:
    errors = err.errors(include_url=False, include_input=False)
    first = errors[0]
    reason: RecordReason
    if first["type"] in ("json_invalid", "json_type"):
        reason = "not_json"
    elif first["type"] == "union_tag_invalid":
        reason = "unknown_type"
    elif any(e["type"] == "literal_error" and e["loc"][-1:] == ("schema_version",) for e in errors):
        reason = "unsupported_version"
    else:
        reason = "invalid"
    return RecordError(reason, describe(err))


EventT = TypeVar("EventT", bound=_Envelope)


def build_event(model: type[EventT], **fields: Any) -> EventT:
    """``model(**fields)``, or an :class:`InvalidEventError` naming each wrong field on one
    line (pydantic's own message takes four lines and a URL per field)."""
    try:
        return model(**fields)
    except ValidationError as err:
        raise InvalidEventError(f"invalid {model.__name__}: {describe(err)}") from None


def describe(err: ValidationError) -> str:
    """The first three problems of a validation error, each with where it is, on one line."""
    errors = err.errors(include_url=False, include_input=False)
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<record>'}: {e['msg']}" for e in errors[:3]
    )


Instant = datetime | int | float
"""An instant: an aware datetime, or seconds since the Unix epoch."""


def to_datetime(value: Instant, *, name: str) -> datetime:
    """Turn an aware datetime or epoch seconds into an aware UTC datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidEventError(f"{name} must be timezone-aware, got a naive datetime")
        return value.astimezone(UTC)
    seconds = numeric_date(value)
    if seconds is None:
        raise InvalidEventError(
            f"{name} must be a datetime or a finite number of seconds since the epoch, "
            f"got {type(value).__name__}"
        )
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as err:
        raise InvalidEventError(f"{name} is not a representable instant: {value!r}") from err
