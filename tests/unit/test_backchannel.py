"""Logout tokens and Keycloak admin messages checked as Back-Channel Logout 1.0 section 2.6
says, and mapped onto revocation events; no network: the keys come from a resolver."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jwt_revocation.cli._table import build_parser
from jwt_revocation.producer import LogoutTokenError, LogoutTokenVerifier
from jwt_revocation.producer._backchannel import admin_event, logout_event
from jwt_revocation.shared import (
    AllTokensRevoked,
    ConfigurationError,
    RevocationSettings,
    SessionRevoked,
    UnknownKeyError,
    UserTokensRevoked,
)
from tests.support import FakeClock

ISSUER = "https://idp.example.com/realms/acme"
CLIENT = "orders"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EVENT = "http://schemas.openid.net/event/backchannel-logout"


def _keys(header: Mapping[str, Any]) -> Any:
    if header.get("kid") != "k1":
        raise UnknownKeyError(f"no signing key with kid {header.get('kid')!r}")
    return KEY.public_key()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(clock: FakeClock) -> LogoutTokenVerifier:
    return LogoutTokenVerifier(issuer=ISSUER, client_id=CLIENT, keys=_keys, clock=clock)


def _claims(clock: FakeClock, **changes: Any) -> dict[str, Any]:
    claims = {
        "iss": ISSUER,
        "aud": CLIENT,
        "iat": int(clock.now),
        "exp": int(clock.now) + 120,
        "jti": "jti-1",
        "sub": "user-1",
        "sid": "session-1",
        "typ": "Logout",
        "events": {EVENT: {}},
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _token(claims: dict[str, Any], *, key: Any = KEY, **header: Any) -> str:
    headers = {"typ": "logout+jwt", "kid": "k1", **header}
    # typ None: PyJWT leaves the typ header out.
    headers = {k: v for k, v in headers.items() if v is not None or k == "typ"}
    return jwt.encode(claims, key, algorithm=headers.pop("alg", "RS256"), headers=headers)


def test_a_keycloak_shaped_logout_token_names_its_session_and_user(
    verifier: LogoutTokenVerifier, clock: FakeClock
) -> None:
    token = verifier.verify(_token(_claims(clock)))

    assert (token.jti, token.issuer, token.user_id, token.session_id) == (
        "jti-1",
        ISSUER,
        "user-1",
        "session-1",
    )
    assert token.issued_at == int(clock.now)


def test_a_session_logout_revokes_the_sessions_tokens_issued_before_the_logout(
    verifier: LogoutTokenVerifier, clock: FakeClock
) -> None:
    event = logout_event(verifier.verify(_token(_claims(clock))), issuer="receiver")

    assert isinstance(event, SessionRevoked)
    assert (event.event_id, event.issuer, event.user_id, event.session_id) == (
        "jti-1",
        "receiver",
        "user-1",
        "session-1",
    )
    assert event.not_before == datetime.fromtimestamp(int(clock.now), UTC)


def test_a_logout_token_with_only_sub_revokes_every_token_of_the_user(
    verifier: LogoutTokenVerifier, clock: FakeClock
) -> None:
    event = logout_event(verifier.verify(_token(_claims(clock, sid=None))), issuer="receiver")

    assert isinstance(event, UserTokensRevoked)
    assert event.user_id == "user-1"


def test_with_the_user_scope_a_session_logout_revokes_every_token_of_the_user(
    verifier: LogoutTokenVerifier, clock: FakeClock
) -> None:
    token = verifier.verify(_token(_claims(clock)))
    event = logout_event(token, issuer="receiver", scope="user")
    only_sid = verifier.verify(_token(_claims(clock, sub=None)))

    assert isinstance(event, UserTokensRevoked)
    assert event.user_id == "user-1"
    assert isinstance(logout_event(only_sid, issuer="receiver", scope="user"), SessionRevoked)


def test_a_logout_token_with_only_sid_keys_the_event_by_the_session(
    verifier: LogoutTokenVerifier, clock: FakeClock
) -> None:
    event = logout_event(verifier.verify(_token(_claims(clock, sub=None))), issuer="receiver")

    assert isinstance(event, SessionRevoked)
    assert (event.user_id, event.session_id) == ("session-1", "session-1")


def test_an_untyped_logout_token_is_accepted(
    verifier: LogoutTokenVerifier, clock: FakeClock
) -> None:
    assert verifier.verify(_token(_claims(clock), typ=None)).jti == "jti-1"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "https://evil.example.com"}, "invalid_claims"),
        ({"aud": "billing"}, "invalid_claims"),
        ({"aud": None}, "invalid_claims"),
        ({"jti": None}, "invalid_claims"),
        ({"iat": None}, "invalid_claims"),
        ({"exp": None}, "invalid_claims"),
        ({"sub": None, "sid": None}, "invalid_claims"),
        ({"sid": 42}, "invalid_claims"),
        ({"events": None}, "invalid_claims"),
        ({"events": {"urn:other": {}}}, "not_logout"),
        ({"events": {EVENT: "yes"}}, "not_logout"),
        ({"nonce": "n-0S6_WzA2Mj"}, "not_logout"),
    ],
)
def test_a_logout_token_that_fails_a_claim_check_is_refused(
    verifier: LogoutTokenVerifier, clock: FakeClock, changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(LogoutTokenError) as caught:
        verifier.verify(_token(_claims(clock, **changes)))

    assert caught.value.reason == reason
    assert not caught.value.retriable


def test_the_lifetime_checks_use_the_clock(verifier: LogoutTokenVerifier, clock: FakeClock) -> None:
    token = _token(_claims(clock))
    expired = FakeClock(clock.now + 121 + verifier.leeway)
    early = FakeClock(clock.now - verifier.leeway - 1)
    old = _token(_claims(clock, exp=int(clock.now) + 3600))
    aged = FakeClock(clock.now + verifier.max_age + verifier.leeway + 1)

    for when, what in ((expired, token), (early, token), (aged, old)):
        later = LogoutTokenVerifier(issuer=ISSUER, client_id=CLIENT, keys=_keys, clock=when)
        with pytest.raises(LogoutTokenError, match="invalid_claims"):
            later.verify(what)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda c: _token(_claims(c), key=OTHER_KEY), "bad_signature"),
        (lambda c: _token(_claims(c), kid="made-up"), "bad_signature"),
        (
            lambda c: _token(_claims(c), alg="HS256", key="a-shared-secret-of-32-bytes-long!"),
            "bad_signature",
        ),
        (lambda c: jwt.encode(_claims(c), "", algorithm="none"), "unsigned"),
        (lambda c: _token(_claims(c), typ="JWT"), "not_logout"),
        (lambda c: "a.b.c.d.e", "malformed"),
        (lambda c: "not a token", "malformed"),
        (lambda c: "e30.e30.e30", "bad_signature"),  # no alg
    ],
)
def test_a_forged_or_mistyped_logout_token_is_refused(
    verifier: LogoutTokenVerifier, clock: FakeClock, make: Any, reason: str
) -> None:
    with pytest.raises(LogoutTokenError) as caught:
        verifier.verify(make(clock))

    assert caught.value.reason == reason


def _admin_message(clock: FakeClock, **changes: Any) -> str:
    claims = {
        "id": "77752be9-787f-8728-fb6d-e87c174befc4-1795775264362",
        "expiration": int(clock.now) + 30,
        "resource": CLIENT,
        "action": "PUSH_NOT_BEFORE",
        "notBefore": int(clock.now) - 1,
    }
    claims.update(changes)
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "k1"})


def test_a_keycloak_push_not_before_revokes_every_older_token_of_the_realm(
    verifier: LogoutTokenVerifier, clock: FakeClock
) -> None:
    message = verifier.verify_admin_message(_admin_message(clock))
    event = admin_event(message, realm_issuer=ISSUER, issuer="receiver")

    assert isinstance(event, AllTokensRevoked)
    assert event.token_issuer == ISSUER
    assert event.not_before == datetime.fromtimestamp(int(clock.now) - 1, UTC)
    assert event.event_id == message.id


def test_a_keycloak_logout_without_a_realm_not_before_revokes_nothing(
    verifier: LogoutTokenVerifier, clock: FakeClock
) -> None:
    message = verifier.verify_admin_message(_admin_message(clock, action="LOGOUT", notBefore=0))

    assert admin_event(message, realm_issuer=ISSUER, issuer="receiver") is None


@pytest.mark.parametrize(
    "changes",
    [
        {"resource": "billing"},
        {"expiration": 1_700_000_000},
        {"action": "PUSH_REVOCATION_POLICY"},
        {"notBefore": "now"},
        {"id": None},
    ],
)
def test_a_keycloak_admin_message_for_another_client_expired_or_unknown_is_refused(
    verifier: LogoutTokenVerifier, clock: FakeClock, changes: dict[str, Any]
) -> None:
    with pytest.raises(LogoutTokenError):
        verifier.verify_admin_message(_admin_message(clock, **changes))


def test_an_admin_message_signed_by_another_key_is_refused(
    verifier: LogoutTokenVerifier, clock: FakeClock
) -> None:
    forged = jwt.encode(
        jwt.decode(_admin_message(clock), options={"verify_signature": False}),
        OTHER_KEY,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    with pytest.raises(LogoutTokenError, match="bad_signature"):
        verifier.verify_admin_message(forged)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"issuer": ""},
        {"client_id": ""},
        {"algorithms": []},
        {"algorithms": "RS256"},
        {"algorithms": ["HS256"]},
        {"algorithms": ["none"]},
        {"max_age": 0},
        {"jwks_url": "https://idp.example.com/certs"},  # with keys=
    ],
)
def test_a_verifier_that_could_not_check_logout_tokens_is_refused(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"issuer": ISSUER, "client_id": CLIENT, "keys": _keys, **kwargs}
    with pytest.raises(ConfigurationError):
        LogoutTokenVerifier(**arguments)


def test_receive_takes_its_back_channel_options_from_the_settings() -> None:
    settings = RevocationSettings(
        oidc_issuer=ISSUER,
        oidc_client_id=CLIENT,
        logout_scope="user",
        keycloak_admin_path="/keycloak",
    )

    args = build_parser(settings).parse_args(["receive"])
    flags = build_parser(RevocationSettings()).parse_args(
        ["receive", "--oidc-issuer", ISSUER, "--oidc-client-id", CLIENT]
    )

    assert (args.oidc_issuer, args.oidc_client_id, args.oidc_jwks_url) == (ISSUER, CLIENT, None)
    assert (args.logout_scope, args.keycloak_admin_path) == ("user", "/keycloak")
    assert (flags.oidc_issuer, flags.logout_scope, flags.keycloak_admin_path) == (
        ISSUER,
        "session",
        None,
    )


# -- whatever a token can cause is a LogoutTokenError ----------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_HUGE = st.integers(min_value=10**11, max_value=10**400) | st.integers(max_value=-1)


def _signed(claims: dict[str, Any], header: dict[str, Any]) -> str:
    """Signed with the provider's key, whatever the claims and header: PyJWT's encode refuses
    some headers (a ``crit`` that is no list), which a forger's token may still carry."""
    full = {"typ": "JWT", "alg": "RS256", "kid": "k1", **header}
    parts = [json.dumps(full).encode(), json.dumps(claims).encode()]
    signing_input = b".".join(base64.urlsafe_b64encode(p).rstrip(b"=") for p in parts)
    rs256 = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256)
    signature = rs256.sign(signing_input, KEY)
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


def _raw(header: Any, payload: bytes, signature: bytes) -> str:
    parts = [json.dumps(header).encode(), payload, signature]
    return ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in parts)


@settings(max_examples=1_500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.dictionaries(
        st.sampled_from(["iss", "aud", "iat", "exp", "jti", "sub", "sid", "events", "nonce"]),
        _JSON | _HUGE,
        max_size=3,
    ),
    header=st.dictionaries(
        st.sampled_from(["typ", "crit", "b64", "cty", "zip"]), _JSON, max_size=2
    ),
    raw=st.none() | st.tuples(_JSON, st.binary(max_size=64), st.binary(max_size=300)),
)
@example(changes={}, header={"crit": None, "b64": False}, raw=None)
def test_a_logout_token_fails_only_with_a_logout_token_error(
    changes: dict[str, Any], header: dict[str, Any], raw: tuple[Any, bytes, bytes] | None
) -> None:
    clock = FakeClock()
    verifier = LogoutTokenVerifier(issuer=ISSUER, client_id=CLIENT, keys=_keys, clock=clock)
    token = _signed({**_claims(clock), **changes}, header) if raw is None else _raw(*raw)
    try:
        verified = verifier.verify(token)
    except LogoutTokenError:
        return
    logout_event(verified, issuer="receiver")  # what the receiver builds from it next


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.dictionaries(
        st.sampled_from(["id", "action", "resource", "expiration", "notBefore"]),
        _JSON | _HUGE,
        max_size=3,
    )
)
def test_an_admin_message_fails_only_with_a_logout_token_error(changes: dict[str, Any]) -> None:
    clock = FakeClock()
    verifier = LogoutTokenVerifier(issuer=ISSUER, client_id=CLIENT, keys=_keys, clock=clock)
    now = int(clock.now)
    claims = {"id": "m", "action": "LOGOUT", "resource": CLIENT, "expiration": now + 30}
    try:
        message = verifier.verify_admin_message(
            _signed({**claims, "notBefore": now, **changes}, {})
        )
    except LogoutTokenError:
        return
    admin_event(message, realm_issuer=ISSUER, issuer="receiver")


@pytest.mark.parametrize(
    "changes",
    [{"iat": 10**400}, {"exp": float("inf")}, {"iat": float("nan")}],
    ids=["beyond-float", "infinite", "nan"],
)
def test_a_logout_token_time_that_is_no_finite_number_is_refused(
    verifier: LogoutTokenVerifier, clock: FakeClock, changes: dict[str, Any]
) -> None:
    with pytest.raises(LogoutTokenError, match="finite number"):
        verifier.verify(_signed({**_claims(clock), **changes}, {"typ": "logout+jwt"}))


@pytest.mark.parametrize(
    "changes", [{"notBefore": 10**12}, {"expiration": 10**400}, {"notBefore": -1}]
)
def test_an_admin_message_time_no_datetime_holds_is_refused(
    verifier: LogoutTokenVerifier, clock: FakeClock, changes: dict[str, Any]
) -> None:
    now = int(clock.now)
    claims = {"id": "m", "action": "LOGOUT", "resource": CLIENT, "expiration": now + 30}
    with pytest.raises(LogoutTokenError, match="before the year 10000"):
        verifier.verify_admin_message(_signed({**claims, "notBefore": now, **changes}, {}))


def test_a_bad_crit_header_is_a_malformed_token(
    verifier: LogoutTokenVerifier, clock: FakeClock
) -> None:
    with pytest.raises(LogoutTokenError) as caught:
        verifier.verify(_signed(_claims(clock), {"crit": "b64"}))

    assert caught.value.reason == "malformed"
