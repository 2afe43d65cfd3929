"""OpenID Shared Signals: revocation events as Security Event Tokens (RFC 8417), in and out.

A Security Event Token (SET) is a signed JWT whose ``events`` claim holds one event, named by a
URI. Four event types of the OpenID Shared Signals Framework (SSF 1.0) map onto the revocation
events (the README has the table):

* CAEP ``session-revoked`` whose complex subject names a session: a ``jwt_id`` session (SSF's
  format for one JWT, by ``iss`` and ``jti``) → :class:`TokenRevoked`; an ``opaque`` session
  (CAEP's own examples name sessions so, by their id) → :class:`SessionRevoked`. Naming only a
  user → :class:`UserTokensRevoked`.
* CAEP ``credential-change`` → :class:`UserTokensRevoked` (``cause="credential_change"``),
  except ``change_type: "create"``, which revokes nothing.
* RISC ``account-disabled`` → :class:`UserTokensRevoked` (``cause="account_disabled"``).
* RISC ``account-purged`` → :class:`UserDeleted`.
* :data:`ALL_TOKENS_REVOKED`, this package's own event type (no standard event revokes every
  token of an issuer) → :class:`AllTokensRevoked`; SSF allows event types agreed between
  transmitter and receiver.

A ``jwt_id`` session's ``iss`` becomes ``token_issuer`` (the jti is revoked for that issuer
only) when it differs from the SET's ``iss``. When they are equal the jti is revoked for every
issuer: that is how this package wrote every SET before ``token_issuer`` existed (the publisher's
name in both), and an identity provider names its own tokens so too; revoking more is the safe
reading. Before sessions existed, an ``opaque`` session was read as a jti.

:class:`SecurityEventSigner` writes SETs; :class:`SecurityEventVerifier` checks a SET's
signature, ``typ``, issuer and audience before mapping it, and raises :class:`RecordError` with
one of the kinds ``unsigned``, ``bad_signature``, ``invalid_set`` or ``unmapped_event``
otherwise. Only the errors a bad SET can raise become a :class:`RecordError` (see
``_MALFORMED``); any other exception is a bug and propagates, so the sidecar sees it, counts
it and fails closed instead of skipping a record it should apply. Timestamps are read by
:func:`~jwt_revocation.shared.numeric_date`, as every timestamp claim is. Signing keys never
appear in errors or reprs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
from pydantic import ValidationError

from ._errors import ConfigurationError, RecordError
from ._events import (
    MAX_RECORD_BYTES,
    AllTokensRevoked,
    Event,
    SessionRevoked,
    TokenRevoked,
    UserDeleted,
    UserTokensCause,
    UserTokensRevoked,
    decode_event,
    describe,
    looks_like_set,
)
from ._keys import KeyRole, check_key
from ._numeric_date import numeric_date

if TYPE_CHECKING:
    from ._settings import RevocationSettings

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
CREDENTIAL_CHANGE = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
ACCOUNT_DISABLED = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
ACCOUNT_PURGED = "https://schemas.openid.net/secevent/risc/event-type/account-purged"
ALL_TOKENS_REVOKED = "urn:jwt-revocation:secevent:all-tokens-revoked"
"""This package's event type for :class:`AllTokensRevoked`: the payload carries
``event_timestamp`` (``not_before``) and, for one issuer's tokens, ``token_issuer``."""

_CAUSE_EVENTS: dict[UserTokensCause | None, str] = {
    None: SESSION_REVOKED,
    "credential_change": CREDENTIAL_CHANGE,
    "account_disabled": ACCOUNT_DISABLED,
}
"""The Shared Signals event a user-wide revocation is written as, by its cause."""
_EVENT_CAUSES = {uri: cause for cause, uri in _CAUSE_EVENTS.items()}

SET_TYPE = "secevent+jwt"
"""The JOSE ``typ`` of a SET (RFC 8417 section 2.3)."""
SET_CONTENT_TYPE = "application/secevent+jwt"
"""The ``content-type`` Kafka header the publisher puts on SET records."""

_COMPLEX_MEMBERS = ("user", "device", "session", "application", "tenant", "org_unit", "group")
# NumericDates above this are milliseconds (year 5138 in seconds), a mistake of early drafts.
_LARGEST_SECONDS = 1e11

Key = Any
"""A key as PyJWT takes it (a secret, a PEM string, a key object, a ``jwt.PyJWK``), or a
``jwt.PyJWKSet`` whose keys are chosen by the SET's ``kid``."""


def _numeric_date(instant: datetime) -> int | float:
    seconds = instant.timestamp()
    return int(seconds) if instant.microsecond == 0 else seconds


def _key_object(key: Key) -> Key:
    return key.key if isinstance(key, jwt.PyJWK) else key


def _check_key(key: Key, algorithm: str, role: KeyRole) -> None:
    """Refuse, at construction, an algorithm that signs nothing or a key that does not suit it."""
    if algorithm.lower() == "none":
        raise ConfigurationError("SETs must be signed; algorithm 'none' is refused")
    check_key(key, [algorithm], role=role, what=f"the SET {role} key")


class SecurityEventSigner:
    """Signs revocation events as SSF Security Event Tokens."""

    def __init__(
        self,
        key: Key,
        *,
        algorithm: str,
        audience: str | Sequence[str] | None = None,
        key_id: str | None = None,
    ) -> None:
        _check_key(key, algorithm, "signing")
        self._key = _key_object(key)
        self.algorithm = algorithm
        self.audience = audience
        self.key_id = key_id

    def __repr__(self) -> str:
        return f"SecurityEventSigner(algorithm={self.algorithm!r}, key_id={self.key_id!r})"

    @classmethod
    def from_settings(cls, settings: RevocationSettings) -> SecurityEventSigner:
        """The signer that ``JWT_REVOCATION_SET_SIGNING_KEY`` and its neighbours describe."""
        if settings.set_signing_key is None:
            raise ConfigurationError("JWT_REVOCATION_SET_SIGNING_KEY is not set")
        return cls(
            parse_key(settings.set_signing_key.get_secret_value()),
            algorithm=settings.set_algorithm,
            audience=settings.set_audience,
            key_id=settings.set_key_id,
        )

    def claims(self, event: Event) -> dict[str, Any]:
        """The SET claims of an event: ``iss`` is its issuer, ``jti`` its event id."""
        if isinstance(event, AllTokensRevoked):
            uri = ALL_TOKENS_REVOKED
            scope = event.token_issuer
            sub_id: dict[str, Any] = {"format": "opaque", "id": "*" if scope is None else scope}
            payload: dict[str, Any] = {"event_timestamp": _numeric_date(event.not_before)}
            if scope is not None:
                payload["token_issuer"] = scope
            return self._set(event, sub_id, uri, payload)
        user = {"format": "iss_sub", "iss": event.issuer, "sub": event.user_id}
        sub_id = user
        if isinstance(event, TokenRevoked):
            uri = SESSION_REVOKED
            token_issuer = event.issuer if event.token_issuer is None else event.token_issuer
            sub_id = {
                "format": "complex",
                "user": user,
                "session": {"format": "jwt_id", "iss": token_issuer, "jti": event.jti},
            }
            payload = {
                "event_timestamp": _numeric_date(event.occurred_at),
                "token_exp": _numeric_date(event.expires_at),
            }
        elif isinstance(event, SessionRevoked):
            uri = SESSION_REVOKED
            sub_id = {
                "format": "complex",
                "user": user,
                "session": {"format": "opaque", "id": event.session_id},
            }
            payload = {"event_timestamp": _numeric_date(event.not_before)}
        elif isinstance(event, UserTokensRevoked):
            uri = _CAUSE_EVENTS[event.cause]
            payload = {"event_timestamp": _numeric_date(event.not_before)}
            if uri == CREDENTIAL_CHANGE:
                payload |= {"credential_type": "password", "change_type": "update"}
        else:
            uri = ACCOUNT_PURGED
            payload = {"event_timestamp": _numeric_date(event.at)}
        return self._set(event, sub_id, uri, payload)

    def _set(
        self, event: Event, sub_id: dict[str, Any], uri: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": event.issuer,
            "jti": event.event_id,
            "iat": _numeric_date(event.occurred_at),
            "sub_id": sub_id,
            "events": {uri: payload},
        }
        if self.audience is not None:
            claims["aud"] = self.audience
        return claims

    def encode(self, event: Event) -> str:
        """The event as a signed SET in compact form."""
        headers: dict[str, Any] = {"typ": SET_TYPE}
        if self.key_id is not None:
            headers["kid"] = self.key_id
        return jwt.encode(self.claims(event), self._key, algorithm=self.algorithm, headers=headers)


class SecurityEventVerifier:
    """Verifies SETs from one issuer and maps them onto revocation events.

    With ``signed_only``, plain JSON events are refused as ``unsigned``: only SETs that carry a
    good signature are applied.
    """

    def __init__(
        self,
        key: Key,
        *,
        issuer: str,
        algorithms: Sequence[str],
        audience: str | Sequence[str] | None = None,
        signed_only: bool = False,
    ) -> None:
        if not issuer:
            raise ConfigurationError("issuer must name the SET issuer to trust")
        if not algorithms or isinstance(algorithms, str):
            raise ConfigurationError("algorithms must be a non-empty list, such as ['ES256']")
        if not isinstance(key, jwt.PyJWKSet):
            for algorithm in algorithms:
                _check_key(key, algorithm, "verification")
        self._key = key
        self.issuer = issuer
        self.algorithms = list(algorithms)
        self.audience = audience
        self.signed_only = signed_only
        self._options: dict[str, Any] = {
            "require": ["iss", "iat", "jti", "events"],
            "verify_exp": False,  # a SET is a record of the past, replayed long after
            "verify_iat": False,
            "verify_nbf": False,
            "verify_aud": audience is not None,
        }

    def __repr__(self) -> str:
        return (
            f"SecurityEventVerifier(issuer={self.issuer!r}, algorithms={self.algorithms!r}, "
            f"signed_only={self.signed_only!r})"
        )

    @classmethod
    def from_settings(cls, settings: RevocationSettings) -> SecurityEventVerifier:
        """The verifier that ``JWT_REVOCATION_SET_VERIFY_KEY`` and its neighbours describe."""
        if settings.set_verify_key is None:
            raise ConfigurationError("JWT_REVOCATION_SET_VERIFY_KEY is not set")
        return cls(
            parse_key(settings.set_verify_key.get_secret_value()),
            issuer=settings.set_issuer or settings.issuer,
            algorithms=[settings.set_algorithm],
            audience=settings.set_audience,
            signed_only=settings.signed_only,
        )

    def decode_record(self, value: bytes | None, *, max_token_lifetime: float) -> Event:
        """Map a record value, a SET or (unless ``signed_only``) a JSON event, to an event.

        ``max_token_lifetime`` (seconds) bounds how long a revoked session lives when a
        ``session-revoked`` SET does not say when the token expires.
        """
        if value is None or len(value) > MAX_RECORD_BYTES:
            return decode_event(value)  # raises: not_json or oversized
        if looks_like_set(value):
            return self.decode(value, max_token_lifetime=max_token_lifetime)
        if self.signed_only:
            raise RecordError(
                "unsigned", "a plain event where only signed SETs are accepted (signed_only)"
            )
        return decode_event(value)

    def decode(self, token: bytes | str, *, max_token_lifetime: float) -> Event:
        """Verify a SET and map it to a revocation event, or raise :class:`RecordError`."""
        if isinstance(token, bytes):
            token = token.decode("ascii", "replace")
        token = token.strip()
        header = _header(token)
        if str(header.get("alg", "")).lower() == "none" or token.endswith("."):
            raise RecordError("unsigned", "the SET carries no signature (alg none)")
        claims = self._verified_claims(token, header)
        typ = str(header.get("typ", "")).lower()
        if typ not in (SET_TYPE, SET_CONTENT_TYPE):
            raise RecordError("invalid_set", f"typ must be {SET_TYPE!r}; got {typ or None!r}")
        return _map(claims, max_token_lifetime)

    def _verified_claims(self, token: str, header: Mapping[str, Any]) -> dict[str, Any]:
        key = self._key
        if isinstance(key, jwt.PyJWKSet):
            kid = header.get("kid")
            try:
                key = key[kid] if isinstance(kid, str) else None
            except KeyError:
                key = None
            if key is None:
                raise RecordError("bad_signature", f"no key with kid {kid!r} in the key set")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                _key_object(key),
                algorithms=self.algorithms,
                issuer=self.issuer,
                audience=self.audience,
                options=self._options,  # type: ignore[arg-type]
            )
        # Chained, so a caller can tell which claim failed (the receiver's RFC 8935 answers).
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.InvalidKeyError) as err:
            raise RecordError("bad_signature", f"{type(err).__name__}: {err}") from err
        except jwt.InvalidTokenError as err:
            raise RecordError("invalid_set", f"{type(err).__name__}: {err}") from err
        except _MALFORMED as err:
            raise RecordError(
                "invalid_set", f"the SET could not be checked: {type(err).__name__}"
            ) from err
        return claims


_MALFORMED = (jwt.PyJWTError, ValueError, TypeError, KeyError, RecursionError)
"""What a malformed or crafted SET makes PyJWT raise besides its ``InvalidTokenError``s: another
``PyJWTError`` (a JWK of the wrong kind), ``TypeError`` (a key of another family than the
header's ``alg``: "Expecting a EllipticCurvePrivateKey..."), ``ValueError`` and ``KeyError``
from parsing, ``RecursionError`` from JSON nested too deep. Each is a skipped ``invalid_set``.
Anything else is a bug: it propagates, and the sidecar counts it, logs it with its traceback
and fails closed rather than drop a revocation (see ``consumer/_apply``)."""


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, read without the whole token (PyJWT verifies every segment later)."""
    try:
        segment = token.split(".", 1)[0].encode("ascii")
        header = json.loads(base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4)))
    except (ValueError, UnicodeError, RecursionError) as err:  # RecursionError: nested deep
        raise RecordError("invalid_set", f"the JOSE header is not base64url JSON: {err}") from None
    if not isinstance(header, dict):
        raise RecordError("invalid_set", "the JOSE header is not a JSON object")
    return header


def parse_key(text: str) -> Key:
    """Read a key from text: a JWKS or JWK as JSON, else a PEM key or a shared secret."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return text
    try:
        if '"keys"' in stripped:
            return jwt.PyJWKSet.from_json(stripped)
        return jwt.PyJWK.from_json(stripped)
    except (jwt.PyJWKError, jwt.PyJWKSetError, jwt.InvalidKeyError, ValueError) as err:
        raise ConfigurationError(f"the key looks like JSON but is no JWK: {err}") from None


def record_decoder(
    verifier: SecurityEventVerifier | None, *, max_token_lifetime: float
) -> Callable[[bytes | None], Event]:
    """The function that turns record values into events, with or without SETs."""
    if verifier is None:
        return decode_event

    def decode(value: bytes | None) -> Event:
        return verifier.decode_record(value, max_token_lifetime=max_token_lifetime)

    return decode


# -- mapping ---------------------------------------------------------------------------------


def _invalid(detail: str) -> RecordError:
    return RecordError("invalid_set", detail)


def _instant(value: object, name: str) -> datetime:
    seconds = numeric_date(value)
    if seconds is None:
        raise _invalid(f"{name} must be a NumericDate; got {type(value).__name__}")
    if not 0 <= seconds < _LARGEST_SECONDS:
        raise _invalid(f"{name} {seconds!r} is not seconds since the epoch (milliseconds?)")
    return datetime.fromtimestamp(seconds, UTC)


_USER_FORMATS = {"iss_sub": "sub", "opaque": "id"}
_SESSION_FORMATS = {"jwt_id": "jti", "opaque": "id"}


def _identifier(subject: object, role: str, formats: Mapping[str, str]) -> str:
    """The identifier a user or session subject carries, in one of the formats understood."""
    if not isinstance(subject, dict):
        raise _invalid(f"the {role} subject is not an object")
    fmt = subject.get("format")
    member = formats.get(fmt) if isinstance(fmt, str) else None
    if member is None:
        raise _invalid(
            f"a {role} subject of format {fmt!r} cannot be mapped; use {' or '.join(formats)}"
        )
    value = subject.get(member)
    if not isinstance(value, str) or not value:
        raise _invalid(f"the {fmt} {role} subject has no {member!r} string")
    return value


def _subject(
    claims: Mapping[str, Any], payload: Mapping[str, Any]
) -> tuple[str, dict[str, Any] | None]:
    """The user id, and the session subject when the subject names one session."""
    subject = claims.get("sub_id", payload.get("subject"))
    if not isinstance(subject, dict):
        raise _invalid("the SET has no sub_id subject")
    fmt = subject.get("format")
    if fmt == "complex" or (fmt is None and any(m in subject for m in _COMPLEX_MEMBERS)):
        if "user" not in subject:
            raise _invalid("a complex subject without a user member names no user")
        session = subject.get("session")
        user_id = _identifier(subject["user"], "user", _USER_FORMATS)
        if session is None:
            return user_id, None
        _identifier(session, "session", _SESSION_FORMATS)  # raises unless usable
        return user_id, session
    return _identifier(subject, "user", _USER_FORMATS), None


def _session_event(
    claims: Mapping[str, Any],
    payload: Mapping[str, Any],
    user_id: str,
    session: Mapping[str, Any],
    at: datetime,
    max_token_lifetime: float,
) -> TokenRevoked | SessionRevoked:
    """A ``session-revoked`` naming one session: a JWT by its jti, or a session by its id."""
    envelope = _envelope(claims)
    if session["format"] == "opaque":
        return SessionRevoked(user_id=user_id, session_id=session["id"], not_before=at, **envelope)
    exp = payload.get("token_exp")
    expires_at = (
        at + timedelta(seconds=max_token_lifetime) if exp is None else _instant(exp, "token_exp")
    )
    token_issuer = session.get("iss")
    if token_issuer is not None and not (isinstance(token_issuer, str) and token_issuer):
        raise _invalid("the jwt_id session's iss is not a string")
    return TokenRevoked(
        jti=session["jti"],
        user_id=user_id,
        expires_at=expires_at,
        token_issuer=None if token_issuer == claims["iss"] else token_issuer,
        **envelope,
    )


def _envelope(claims: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "event_id": claims["jti"],
        "issuer": claims["iss"],
        "occurred_at": _instant(claims["iat"], "iat"),
    }


_MAPPED = (SESSION_REVOKED, CREDENTIAL_CHANGE, ACCOUNT_DISABLED, ACCOUNT_PURGED, ALL_TOKENS_REVOKED)


def _map(claims: Mapping[str, Any], max_token_lifetime: float) -> Event:
    events = claims["events"]
    if not isinstance(events, dict) or len(events) != 1:
        raise _invalid("the events claim must hold exactly one event")
    ((uri, payload),) = events.items()
    if not isinstance(payload, dict):
        raise _invalid(f"the payload of {uri} is not an object")
    if uri not in _MAPPED:
        raise RecordError("unmapped_event", f"{uri} revokes nothing")
    if uri == CREDENTIAL_CHANGE and payload.get("change_type") == "create":
        raise RecordError("unmapped_event", f"{uri} with change_type create revokes nothing")
    issued = _instant(claims["iat"], "iat")
    stamp = payload.get("event_timestamp")
    at = issued if stamp is None else _instant(stamp, "event_timestamp")
    try:
        if uri == ALL_TOKENS_REVOKED:
            scope = payload.get("token_issuer")
            return AllTokensRevoked(not_before=at, token_issuer=scope, **_envelope(claims))
        user_id, session = _subject(claims, payload)
        if uri == ACCOUNT_PURGED:
            return UserDeleted(user_id=user_id, at=at, **_envelope(claims))
        if uri == SESSION_REVOKED and session is not None:
            return _session_event(claims, payload, user_id, session, at, max_token_lifetime)
        cause = _EVENT_CAUSES[uri]
        return UserTokensRevoked(user_id=user_id, not_before=at, cause=cause, **_envelope(claims))
    except ValidationError as err:
        raise _invalid(describe(err)) from None
