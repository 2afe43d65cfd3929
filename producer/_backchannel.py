"""Verify what an OpenID provider sends a client when sessions end: OIDC Back-Channel Logout
tokens, and Keycloak's own admin messages.

:class:`LogoutTokenVerifier` checks a ``logout_token`` as OpenID Connect Back-Channel Logout 1.0
section 2.6 says, in this order, and raises :class:`LogoutTokenError` at the first failure:

1. a compact JWS (an encrypted token is refused: no decryption key is configured);
2. ``alg`` one of ``algorithms`` (RS256 by default) and never ``none``;
3. the signature, with the provider's key of the token's ``kid`` from its JWKS
   (:class:`JWKSKeys`);
4. ``iss`` the configured issuer, ``aud`` this client, ``exp`` not passed, ``iat`` neither in the
   future nor older than ``max_age`` (all within ``leeway``), ``jti`` present;
5. ``sub``, ``sid`` or both;
6. an ``events`` object with the ``http://schemas.openid.net/event/backchannel-logout`` member;
7. no ``nonce``;
8. the JOSE ``typ``, when present, ``logout+jwt`` (explicit typing, section 2.4).

Step 8 of the spec, "the same ``jti`` not recently received", is the receiver's: it publishes a
token's revocation once and answers a repeat as a success.

:meth:`LogoutTokenVerifier.verify_admin_message` checks Keycloak's ``k_push_not_before`` and
``k_logout`` messages (a bare JWS, ``typ`` JWT, no ``iss``): signed with the realm's key,
``resource`` this client, ``expiration`` not passed, ``action`` ``PUSH_NOT_BEFORE`` or
``LOGOUT``. Both carry the realm's ``notBefore``.

Keys come from the JWKS endpoint (``jwks_url``, or the ``jwks_uri`` of the issuer's discovery
document) through :class:`~jwt_revocation.shared.JWKSKeys`: fetched in a background thread and
kept; a ``kid`` not among them starts a fetch, at most once per ``refetch_interval`` (1 s here)
whatever the outcome, discovery included, so a flood of made-up ``kid`` values cannot make the
receiver hammer the provider. A logout token whose key is not at hand waits (up to one
interval and one fetch's ``timeout``) for a fetch that began after it arrived, since the provider does not
resend a refused logout; at most four tokens wait at once and the others are refused at once,
so made-up kids never hold the threads that valid logouts need. Tokens and keys never appear in
errors or logs.

Whatever a token or message can cause is a :class:`LogoutTokenError` (PyJWT's errors, a bad
``crit`` header, parsing's ``ValueError``, numbers that are no date: property-tested with
generated tokens); any other exception (a key source or a clock that fails) is a bug and
passes through, for the receiver to log and answer 500 rather than a 400 the provider would
never retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt

from jwt_revocation.shared import (
    AllTokensRevoked,
    Clock,
    ConfigurationError,
    DurationLike,
    JWKSKeys,
    RevocationError,
    SessionRevoked,
    SidecarUnavailableError,
    UserTokensRevoked,
    numeric_date,
)
from jwt_revocation.shared._arguments import require_callable
from jwt_revocation.shared._duration import parse_seconds
from jwt_revocation.shared._keys import check_algorithms

logger = logging.getLogger(__name__)

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
"""The member of a logout token's ``events`` claim (section 2.4)."""
LOGOUT_TOKEN_TYPE = "logout+jwt"  # noqa: S105 - a media type, not a secret
"""The JOSE ``typ`` of an explicitly typed logout token."""
ADMIN_ACTIONS = ("PUSH_NOT_BEFORE", "LOGOUT")
"""The Keycloak admin messages accepted: ``k_push_not_before`` and ``k_logout``."""
MAX_EPOCH_SECONDS = 253_402_300_799
"""9999-12-31T23:59:59Z, the last second a ``datetime`` holds."""
ADMIN_MESSAGE_LIFETIME = timedelta(seconds=30)
"""Keycloak sets an admin message's ``expiration`` 30 s after it wrote the message."""

LogoutTokenReason = Literal[
    "malformed", "unsigned", "bad_signature", "invalid_claims", "not_logout", "keys_unavailable"
]
"""Why a logout token or an admin message was refused. Every reason but ``keys_unavailable``
(the provider's keys could not be fetched: retry later) is the sender's fault."""


class LogoutTokenError(RevocationError):
    """A logout token or a Keycloak admin message is refused; ``reason`` says why."""

    def __init__(self, reason: LogoutTokenReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: LogoutTokenReason = reason
        self.detail = detail
        self.retriable = reason == "keys_unavailable"


@dataclass(frozen=True)
class LogoutToken:
    """A verified logout token: which session or user ended, when, by which provider."""

    jti: str
    issuer: str
    issued_at: float
    expires_at: float
    user_id: str | None
    session_id: str | None


@dataclass(frozen=True)
class AdminMessage:
    """A verified Keycloak admin message."""

    id: str
    action: str
    resource: str
    not_before: int
    """The realm's not-before (seconds since the epoch); 0 when none is set."""
    expiration: int


KeyResolver = Callable[[Mapping[str, Any]], Any]
"""Returns the verification key for a token's JOSE header (as
:class:`~jwt_revocation.shared.JWKSKeys` does), or raises ``jwt.InvalidTokenError`` (refused)
or :class:`SidecarUnavailableError` (the keys cannot be had now)."""


class LogoutTokenVerifier:
    """Verifies the logout tokens (and Keycloak admin messages) one provider sends one client."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        jwks_url: str | None = None,
        keys: KeyResolver | None = None,
        algorithms: Sequence[str] = ("RS256",),
        leeway: DurationLike = 30.0,
        max_age: DurationLike = 600.0,
        refetch_interval: DurationLike = 1.0,
        timeout: DurationLike = 5.0,
        clock: Clock = time.time,
    ) -> None:
        if not issuer:
            raise ConfigurationError("issuer must name the OpenID provider's iss")
        if not client_id:
            raise ConfigurationError("client_id must name this client (the tokens' aud)")
        algorithms = check_algorithms(algorithms)
        if any(a.upper().startswith("HS") for a in algorithms):
            raise ConfigurationError(
                "logout tokens are verified with public keys: RS, PS, ES or EdDSA"
            )
        # Seconds, a timedelta or text, as every duration of the package.
        leeway = parse_seconds(leeway, name="leeway")
        max_age = parse_seconds(max_age, name="max_age", positive=True)
        refetch_interval = parse_seconds(refetch_interval, name="refetch_interval")
        timeout = parse_seconds(timeout, name="timeout", positive=True)
        if keys is not None:
            require_callable(keys, name="keys", how="a key resolver such as JWKSKeys(url)")
        if keys is not None and jwks_url is not None:
            raise ConfigurationError("pass jwks_url or keys, not both")
        self.issuer = issuer
        self.client_id = client_id
        self.algorithms = list(algorithms)
        self.leeway = leeway
        self.max_age = max_age
        self._clock = clock
        self.refetch_interval = refetch_interval
        if keys is None:
            keys = (
                JWKSKeys(jwks_url, refetch_interval=refetch_interval, timeout=timeout)
                if jwks_url is not None
                else JWKSKeys(issuer=issuer, refetch_interval=refetch_interval, timeout=timeout)
            )
        self.keys: KeyResolver = keys
        """Where the provider's keys come from."""

    def __repr__(self) -> str:
        return f"LogoutTokenVerifier(issuer={self.issuer!r}, client_id={self.client_id!r})"

    def verify(self, token: str) -> LogoutToken:
        """Check a logout token (section 2.6); a :class:`LogoutTokenError` says why it fails."""
        header = self._header(token)
        typ = header.get("typ")
        claims = self._claims(
            token,
            header,
            audience=self.client_id,
            require=["iss", "aud", "iat", "exp", "jti", "events"],
        )
        now = self._clock()
        iat, exp = _numeric(claims, "iat"), _numeric(claims, "exp")
        if exp + self.leeway <= now:
            raise LogoutTokenError("invalid_claims", "the logout token has expired")
        if iat - self.leeway > now:
            raise LogoutTokenError("invalid_claims", "the logout token is issued in the future")
        if now - iat > self.max_age + self.leeway:
            raise LogoutTokenError(
                "invalid_claims",
                f"issued {int(now - iat)} s ago, more than max_age {self.max_age:g} s",
            )
        sub, sid = claims.get("sub"), claims.get("sid")
        if sub is None and sid is None:
            raise LogoutTokenError("invalid_claims", "a logout token names a sub, a sid or both")
        for name, value in (("sub", sub), ("sid", sid), ("jti", claims["jti"])):
            if value is not None and (not isinstance(value, str) or not value or len(value) > 512):
                raise LogoutTokenError(
                    "invalid_claims", f"{name} must be a string of 1 to 512 characters"
                )
        events = claims["events"]
        if not isinstance(events, dict) or not isinstance(
            events.get(BACKCHANNEL_LOGOUT_EVENT), dict
        ):
            raise LogoutTokenError(
                "not_logout", f"the events claim has no {BACKCHANNEL_LOGOUT_EVENT} object"
            )
        if "nonce" in claims:
            raise LogoutTokenError("not_logout", "a logout token must not contain a nonce")
        if typ is not None and str(typ).lower() not in (
            LOGOUT_TOKEN_TYPE,
            "application/" + LOGOUT_TOKEN_TYPE,
        ):
            raise LogoutTokenError("not_logout", f"typ must be {LOGOUT_TOKEN_TYPE!r}; got {typ!r}")
        return LogoutToken(
            jti=claims["jti"],
            issuer=claims["iss"],
            issued_at=iat,
            expires_at=exp,
            user_id=sub,
            session_id=sid,
        )

    def verify_admin_message(self, message: str) -> AdminMessage:
        """Check a Keycloak ``k_push_not_before`` or ``k_logout`` message."""
        header = self._header(message)
        claims = self._claims(message, header, audience=None, require=[])
        fields = {
            "id": str,
            "action": str,
            "resource": str,
            "expiration": int,
            "notBefore": int,
        }
        for name, kind in fields.items():
            value = claims.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise LogoutTokenError("invalid_claims", f"{name} must be a {kind.__name__}")
        for name in ("expiration", "notBefore"):
            # Within what a datetime holds: the event's times are built from both.
            if not 0 <= claims[name] <= MAX_EPOCH_SECONDS:
                raise LogoutTokenError(
                    "invalid_claims", f"{name} must be seconds since 1970 before the year 10000"
                )
        if claims["expiration"] + self.leeway < self._clock():
            raise LogoutTokenError("invalid_claims", "the admin message has expired")
        if claims["resource"] != self.client_id:
            raise LogoutTokenError(
                "invalid_claims",
                f"the admin message is for {claims['resource']!r}, not this client",
            )
        if claims["action"] not in ADMIN_ACTIONS:
            raise LogoutTokenError("not_logout", f"action {claims['action']!r} is not accepted")
        if not 0 < len(claims["id"]) <= 512:
            raise LogoutTokenError("invalid_claims", "id must be a string of 1 to 512 characters")
        return AdminMessage(
            id=claims["id"],
            action=claims["action"],
            resource=claims["resource"],
            not_before=claims["notBefore"],
            expiration=claims["expiration"],
        )

    def _header(self, token: str) -> dict[str, Any]:
        if token.count(".") != 2:
            raise LogoutTokenError(
                "malformed", "not a compact JWS (an encrypted token cannot be read here)"
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as err:  # DecodeError, and a bad crit header
            raise LogoutTokenError("malformed", f"the JOSE header cannot be read: {err}") from None
        except RecursionError:  # a header nested past the interpreter's limit
            raise LogoutTokenError("malformed", "the JOSE header is nested too deep") from None
        alg = str(header.get("alg", ""))
        if alg.lower() == "none" or token.endswith("."):
            raise LogoutTokenError("unsigned", "the token carries no signature (alg none)")
        if alg not in self.algorithms:
            raise LogoutTokenError("bad_signature", f"alg {alg!r} is not one of {self.algorithms}")
        return header

    def _key(self, header: Mapping[str, Any]) -> Any:
        keys = self.keys
        try:
            if isinstance(keys, JWKSKeys):
                return keys.wait_for_key(header)
            return keys(header)
        except SidecarUnavailableError as err:
            raise LogoutTokenError("keys_unavailable", str(err)) from None
        except jwt.InvalidTokenError as err:  # UnknownKeyError included
            raise LogoutTokenError("bad_signature", str(err)) from None

    def _claims(
        self, token: str, header: dict[str, Any], *, audience: str | None, require: list[str]
    ) -> dict[str, Any]:
        key = self._key(header)
        # The lifetime is checked against this verifier's clock, not PyJWT's.
        options: Any = {
            "require": require,
            "verify_aud": audience is not None,
            "verify_exp": False,
            "verify_iat": False,
            "verify_nbf": False,
        }
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                issuer=self.issuer if audience is not None else None,
                audience=audience,
                options=options,
            )
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.InvalidKeyError) as err:
            raise LogoutTokenError("bad_signature", f"{type(err).__name__}: {err}") from None
        except jwt.InvalidTokenError as err:
            raise LogoutTokenError("invalid_claims", f"{type(err).__name__}: {err}") from None
        except (jwt.PyJWTError, ValueError) as err:
            # What else PyJWT raises for a token it cannot use (PyJWKError...) and parsing's
            # ValueError. Anything other is no token's doing but a bug (a key source that
            # returns no key, say): it reaches the receiver, which logs it and answers 500,
            # since a 400 would hide it and the provider would never resend the logout.
            raise LogoutTokenError(
                "malformed", f"the token could not be checked: {type(err).__name__}"
            ) from None
        return claims


def _numeric(claims: dict[str, Any], name: str) -> float:
    value = claims[name]
    seconds = numeric_date(value)
    if seconds is None:
        raise LogoutTokenError("invalid_claims", f"{name} must be a NumericDate (a finite number)")
    return float(seconds)


# -- what each message revokes -----------------------------------------------------------


LogoutScope = Literal["session", "user"]
"""What a logout token that names a session and a user revokes: that session's tokens, or every
token of the user."""


def logout_event(
    token: LogoutToken, *, issuer: str, scope: LogoutScope = "session"
) -> SessionRevoked | UserTokensRevoked:
    """The revocation a logout token asks for, published as ``issuer``'s event.

    With ``sid``: every token of that session issued before the logout token's ``iat`` (the
    provider's clock, like the ``iat`` of the tokens it is compared with). With only ``sub``,
    or with ``scope="user"`` and a ``sub``: every token of that user issued before then. A token
    with a ``sid`` and no ``sub`` names no user: the session id stands in for the user id (the
    record key).
    """
    at = datetime.fromtimestamp(token.issued_at, UTC)
    if token.session_id is not None and (scope == "session" or token.user_id is None):
        return SessionRevoked(
            event_id=token.jti,
            issuer=issuer,
            occurred_at=at,
            user_id=token.user_id or token.session_id,
            session_id=token.session_id,
            not_before=at,
        )
    assert token.user_id is not None  # the verifier refuses a token with neither
    return UserTokensRevoked(
        event_id=token.jti, issuer=issuer, occurred_at=at, user_id=token.user_id, not_before=at
    )


def admin_event(
    message: AdminMessage, *, realm_issuer: str, issuer: str
) -> AllTokensRevoked | None:
    """Every token of the realm issued before the message's not-before, or None when the realm
    has none (0)."""
    if message.not_before <= 0:
        return None
    return AllTokensRevoked(
        event_id=message.id,
        issuer=issuer,
        occurred_at=datetime.fromtimestamp(message.expiration, UTC) - ADMIN_MESSAGE_LIFETIME,
        not_before=datetime.fromtimestamp(message.not_before, UTC),
        token_issuer=realm_issuer,
    )
