"""RevocationVerifier over InMemoryRevocations: PyJWT's checks, then the revocation check.

PyJWT checks ``exp``, ``nbf`` and ``iat`` against the real time, so tokens are issued relative
to ``time.time()``; the revocation side runs on a FakeClock started at that same instant.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jwt.exceptions import InvalidJTIError, InvalidSubjectError

from jwt_revocation.consumer import (
    InMemoryRevocations,
    RevocationVerifier,
    TokenLifetimeExceededError,
    TokenRevokedError,
)
from jwt_revocation.consumer._verifier import MAX_CLAIM_DEPTH
from jwt_revocation.shared import (
    AllTokensRevoked,
    ConfigurationError,
    RevocationError,
    SessionRevoked,
    TokenRevoked,
    UserDeleted,
    UserTokensRevoked,
)
from tests.support import FakeClock

KEY = "unit-test-signing-key/" + "k" * 42
"""64 bytes: long enough for HS256 to HS512 without InsecureKeyLengthWarning."""
WRONG_KEY = "another-signing-key!!/" + "w" * 42
LIFETIME = 3600
SKEW = 60

MakeEvent = Callable[[float], TokenRevoked | UserTokensRevoked | UserDeleted]


def _at(seconds: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=round(seconds * 1e6))


def revoke_jti(jti: str, exp: float, user_id: str = "alice") -> TokenRevoked:
    return TokenRevoked(
        issuer="auth", occurred_at=_at(exp - 60), jti=jti, user_id=user_id, expires_at=_at(exp)
    )


def revoke_user(user_id: str, not_before: float) -> UserTokensRevoked:
    return UserTokensRevoked(
        issuer="auth", occurred_at=_at(not_before), user_id=user_id, not_before=_at(not_before)
    )


def delete_user(user_id: str, at: float) -> UserDeleted:
    return UserDeleted(issuer="auth", occurred_at=_at(at), user_id=user_id, at=_at(at))


def sign(claims: dict[str, Any], *, key: str = KEY, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


@pytest.fixture
def now() -> float:
    """The real time, whole seconds, a little in the past so PyJWT accepts an ``iat`` of it."""
    return float(math.floor(time.time()) - 2)


@pytest.fixture
def clock(now: float) -> FakeClock:
    return FakeClock(now)


@pytest.fixture
def revocations(clock: FakeClock) -> InMemoryRevocations:
    return InMemoryRevocations(max_token_lifetime=LIFETIME, max_clock_skew=SKEW, clock=clock)


@pytest.fixture
def verifier(revocations: InMemoryRevocations) -> RevocationVerifier:
    return RevocationVerifier(revocations, key=KEY, algorithms=["HS256"])


def claims_for(now: float, **extra: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": "alice",
        "jti": "jti-1",
        "iat": int(now) - 60,
        "exp": int(now) + 600,
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


# -- accepted tokens ----------------------------------------------------------------------


def test_valid_token_returns_its_claims(verifier: RevocationVerifier, now: float) -> None:
    claims = claims_for(now, scope="read")

    assert verifier.verify(sign(claims)) == claims
    assert verifier.verify(sign(claims).encode()) == claims


def test_decode_skips_the_revocation_check(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, now: float
) -> None:
    claims = claims_for(now)
    revocations.apply(revoke_jti("jti-1", now + 600))

    assert verifier.decode(sign(claims)) == claims
    with pytest.raises(TokenRevokedError):
        verifier.verify(sign(claims))


# -- revoked tokens -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "make_event"),
    [
        ("token_revoked", lambda now: revoke_jti("jti-1", now + 600)),
        ("user_tokens_revoked", lambda now: revoke_user("alice", now - 10)),
        ("user_deleted", lambda now: delete_user("alice", now - 10)),
    ],
)
def test_each_revocation_raises_token_revoked_error_with_its_reason(
    verifier: RevocationVerifier,
    revocations: InMemoryRevocations,
    now: float,
    reason: str,
    make_event: MakeEvent,
) -> None:
    token = sign(claims_for(now))
    assert verifier.verify(token)["sub"] == "alice"
    assert revocations.apply(make_event(now)) == 1

    with pytest.raises(TokenRevokedError) as caught:
        verifier.verify(token)

    assert caught.value.reason == reason
    assert isinstance(caught.value, jwt.InvalidTokenError)
    assert isinstance(caught.value, RevocationError)
    assert token not in str(caught.value)
    assert KEY not in str(caught.value)


def test_revoked_jti_rejects_only_that_token(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, now: float
) -> None:
    revocations.apply(revoke_jti("jti-1", now + 600))

    with pytest.raises(TokenRevokedError):
        verifier.verify(sign(claims_for(now, jti="jti-1")))
    assert verifier.verify(sign(claims_for(now, jti="jti-2")))["jti"] == "jti-2"


def test_token_issued_after_a_password_change_is_accepted(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, now: float
) -> None:
    cutoff = now - 30.25
    revocations.apply(revoke_user("alice", cutoff))

    after = claims_for(now, iat=cutoff + 0.5)
    before = claims_for(now, iat=cutoff - 0.5)

    assert verifier.verify(sign(after)) == after
    with pytest.raises(TokenRevokedError, match="user_tokens_revoked"):
        verifier.verify(sign(before))


def test_integer_iat_in_the_same_second_as_the_cutoff_is_revoked(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, now: float
) -> None:
    cutoff = now - 30  # a whole second
    revocations.apply(revoke_user("alice", cutoff))

    with pytest.raises(TokenRevokedError):
        verifier.verify(sign(claims_for(now, iat=int(cutoff))))
    assert verifier.verify(sign(claims_for(now, iat=int(cutoff) + 1)))["sub"] == "alice"


def test_token_issued_after_a_deletion_is_accepted(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, now: float
) -> None:
    revocations.apply(delete_user("alice", now - 30.25))

    assert verifier.verify(sign(claims_for(now, iat=now - 29.75)))["sub"] == "alice"
    with pytest.raises(TokenRevokedError, match="user_deleted"):
        verifier.verify(sign(claims_for(now, iat=now - 31)))


def test_other_users_are_unaffected(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, now: float
) -> None:
    revocations.apply(
        revoke_jti("alice-jti", now + 600),
        revoke_user("alice", now - 1),
        delete_user("alice", now - 5),
    )

    bob = claims_for(now, sub="bob", jti="bob-jti", iat=int(now) - 100)

    assert verifier.verify(sign(bob)) == bob
    with pytest.raises(TokenRevokedError):
        verifier.verify(sign(claims_for(now, iat=int(now) - 100)))


def revoke_session(session_id: str, not_before: float) -> SessionRevoked:
    return SessionRevoked(
        issuer="auth",
        occurred_at=_at(not_before),
        user_id="alice",
        session_id=session_id,
        not_before=_at(not_before),
    )


def revoke_all(not_before: float, token_issuer: str | None = None) -> AllTokensRevoked:
    return AllTokensRevoked(
        issuer="auth",
        occurred_at=_at(not_before),
        not_before=_at(not_before),
        token_issuer=token_issuer,
    )


@pytest.mark.parametrize(
    ("reason", "revoke", "claims"),
    [
        ("session_revoked", lambda t: revoke_session("sess-1", t), {"sid": "sess-1"}),
        ("all_tokens_revoked", lambda t: revoke_all(t), {}),
        ("all_tokens_revoked", lambda t: revoke_all(t, "https://a"), {"iss": "https://a"}),
    ],
    ids=["session", "everyone", "one-issuer"],
)
def test_session_and_everyones_cutoffs_both_ways(
    verifier: RevocationVerifier,
    revocations: InMemoryRevocations,
    now: float,
    reason: str,
    revoke: Callable[[float], SessionRevoked | AllTokensRevoked],
    claims: dict[str, Any],
) -> None:
    cutoff = now - 30 + 0.5  # inside a second
    revocations.apply(revoke(cutoff))

    # Before, and a whole-second iat in the same second (fail closed).
    for iat in (cutoff - 1, cutoff - 0.25, int(cutoff)):
        with pytest.raises(TokenRevokedError) as caught:
            verifier.verify(sign(claims_for(now, iat=iat, **claims)))
        assert caught.value.reason == reason
    for iat in (cutoff + 0.25, int(cutoff) + 1):  # a later login
        assert verifier.verify(sign(claims_for(now, iat=iat, **claims)))["sub"] == "alice"


def test_a_revoked_session_spares_the_users_other_sessions(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, now: float
) -> None:
    revocations.apply(revoke_session("laptop", now - 10))
    old = int(now) - 100

    with pytest.raises(TokenRevokedError, match="session_revoked"):
        verifier.verify(sign(claims_for(now, iat=old, sid="laptop", jti="refresh-2")))
    assert verifier.verify(sign(claims_for(now, iat=old, sid="phone")))["sid"] == "phone"
    assert verifier.verify(sign(claims_for(now, iat=old)))["sub"] == "alice"  # no sid at all


def test_session_claim_names_the_session(revocations: InMemoryRevocations, now: float) -> None:
    revocations.apply(revoke_session("laptop", now - 10))
    family = RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], session_claim="fid")
    none = RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], session_claim=None)
    old = int(now) - 100

    with pytest.raises(TokenRevokedError, match="session_revoked"):
        family.verify(sign(claims_for(now, iat=old, fid="laptop", sid="phone")))
    assert family.verify(sign(claims_for(now, iat=old, sid="laptop")))["sid"] == "laptop"
    assert none.verify(sign(claims_for(now, iat=old, sid="laptop")))["sid"] == "laptop"


def test_a_revoked_session_without_iat_is_a_missing_claim(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, now: float
) -> None:
    revocations.apply(revoke_session("laptop", now - 10))

    with pytest.raises(jwt.MissingRequiredClaimError):
        verifier.verify(sign(claims_for(now, iat=None, sid="laptop", exp=int(now) + 60)))


def test_everyones_cutoff_of_one_issuer_spares_the_other_issuers(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, now: float
) -> None:
    revocations.apply(revoke_all(now - 10, "https://a"))
    old = int(now) - 100

    with pytest.raises(TokenRevokedError, match="all_tokens_revoked"):
        verifier.verify(sign(claims_for(now, iat=old, iss="https://a")))
    assert verifier.verify(sign(claims_for(now, iat=old, iss="https://b")))["iss"] == "https://b"
    assert verifier.verify(sign(claims_for(now, iat=old)))["sub"] == "alice"


@pytest.mark.parametrize("scoped", [True, False], ids=["scoped", "every-issuer"])
def test_a_jti_revoked_under_one_issuer_both_ways(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, now: float, scoped: bool
) -> None:
    revocations.apply(
        TokenRevoked(
            issuer="auth",
            occurred_at=_at(now),
            jti="jti-1",
            user_id="alice",
            expires_at=_at(now + 600),
            token_issuer="https://a" if scoped else None,
        )
    )

    with pytest.raises(TokenRevokedError, match="token_revoked"):
        verifier.verify(sign(claims_for(now, iss="https://a")))
    other = sign(claims_for(now, iss="https://b"))
    if scoped:
        assert verifier.verify(other)["iss"] == "https://b"
        assert verifier.verify(sign(claims_for(now)))["jti"] == "jti-1"  # no iss
    else:
        with pytest.raises(TokenRevokedError, match="token_revoked"):
            verifier.verify(other)
    assert verifier.is_revoked(jti="jti-1", token_issuer="https://b") == (
        None if scoped else "token_revoked"
    )


@pytest.mark.parametrize(("claim", "value"), [("sid", 7), ("sid", ["a"]), ("iss", {"a": 1})])
def test_a_session_or_issuer_claim_that_is_no_string_is_rejected(
    verifier: RevocationVerifier, now: float, claim: str, value: object
) -> None:
    with pytest.raises(jwt.InvalidTokenError, match=f"{claim} claim must be a string"):
        verifier.check_claims(claims_for(now, **{claim: value}))


def test_user_claim_names_the_user(revocations: InMemoryRevocations, now: float) -> None:
    verifier = RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], user_claim="uid")
    revocations.apply(revoke_user("alice", now - 1))

    with pytest.raises(TokenRevokedError):
        verifier.verify(sign(claims_for(now, uid="alice", sub="service-account")))
    assert verifier.verify(sign(claims_for(now, uid="bob", sub="alice")))["uid"] == "bob"


def test_without_jti_only_the_user_cutoff_applies(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, now: float
) -> None:
    revocations.apply(revoke_jti("jti-1", now + 600), revoke_user("alice", now - 30))
    old = claims_for(now, jti=None, iat=int(now) - 100)
    new = claims_for(now, jti=None, iat=int(now) - 10)
    assert "jti" not in old

    with pytest.raises(TokenRevokedError) as caught:
        verifier.verify(sign(old))
    assert caught.value.reason == "user_tokens_revoked"
    assert verifier.verify(sign(new)) == new


@pytest.mark.parametrize(
    "make_event",
    [lambda now: revoke_user("alice", now - 10), lambda now: delete_user("alice", now - 10)],
    ids=["cutoff", "deletion"],
)
def test_missing_iat_when_the_user_has_an_entry_is_a_missing_claim(
    verifier: RevocationVerifier,
    revocations: InMemoryRevocations,
    now: float,
    make_event: MakeEvent,
) -> None:
    revocations.apply(make_event(now))

    with pytest.raises(jwt.MissingRequiredClaimError) as caught:
        verifier.verify(sign(claims_for(now, iat=None)))

    assert caught.value.claim == "iat"
    assert not isinstance(caught.value, TokenRevokedError)


def test_missing_iat_without_user_entries_is_accepted(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, now: float
) -> None:
    revocations.apply(revoke_user("bob", now - 10))
    claims = claims_for(now, iat=None)

    assert verifier.verify(sign(claims)) == claims


def test_missing_iat_with_a_revoked_jti_is_revoked(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, now: float
) -> None:
    revocations.apply(revoke_jti("jti-1", now + 600), revoke_user("alice", now - 10))

    with pytest.raises(TokenRevokedError) as caught:
        verifier.verify(sign(claims_for(now, iat=None)))

    assert caught.value.reason == "token_revoked"


# -- tokens PyJWT rejects -----------------------------------------------------------------


def test_missing_exp_is_rejected(verifier: RevocationVerifier, now: float) -> None:
    with pytest.raises(jwt.MissingRequiredClaimError) as caught:
        verifier.verify(sign(claims_for(now, exp=None)))

    assert caught.value.claim == "exp"


def test_expired_token_is_rejected(verifier: RevocationVerifier, now: float) -> None:
    with pytest.raises(jwt.ExpiredSignatureError):
        verifier.verify(sign(claims_for(now, iat=int(now) - 100, exp=int(now) - 10)))


def test_alg_none_token_is_rejected(verifier: RevocationVerifier, now: float) -> None:
    unsigned = jwt.encode(claims_for(now), "", algorithm="none")

    with pytest.raises(jwt.InvalidAlgorithmError):
        verifier.verify(unsigned)


def test_alg_none_header_with_a_valid_signature_is_rejected(
    verifier: RevocationVerifier, now: float
) -> None:
    real = sign(claims_for(now))
    _, payload, signature = real.split(".")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()

    with pytest.raises(jwt.InvalidAlgorithmError):
        verifier.verify(f"{header}.{payload}.{signature}")


def test_wrong_key_is_rejected(verifier: RevocationVerifier, now: float) -> None:
    with pytest.raises(jwt.InvalidSignatureError):
        verifier.verify(sign(claims_for(now), key=WRONG_KEY))


def test_wrong_algorithm_is_rejected(verifier: RevocationVerifier, now: float) -> None:
    with pytest.raises(jwt.InvalidAlgorithmError):
        verifier.verify(sign(claims_for(now), algorithm="HS512"))


def test_tampered_signature_is_rejected(verifier: RevocationVerifier, now: float) -> None:
    header, payload, signature = sign(claims_for(now)).split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    tampered = signature[:middle] + flipped + signature[middle + 1 :]

    with pytest.raises(jwt.InvalidSignatureError):
        verifier.verify(f"{header}.{payload}.{tampered}")


def test_tampered_payload_is_rejected(verifier: RevocationVerifier, now: float) -> None:
    header, _, signature = sign(claims_for(now, sub="alice")).split(".")
    _, other_payload, _ = sign(claims_for(now, sub="admin")).split(".")

    with pytest.raises(jwt.InvalidSignatureError):
        verifier.verify(f"{header}.{other_payload}.{signature}")


@pytest.mark.parametrize(
    "garbage",
    ["", "garbage", "a.b", "a.b.c", "...", "\x00", "ünïcödé.ü.ü", "eyJ9.eyJ9.", b"\xff\xfe.\x00."],
)
def test_garbage_is_rejected(verifier: RevocationVerifier, garbage: str | bytes) -> None:
    with pytest.raises(jwt.DecodeError):
        verifier.verify(garbage)


@pytest.mark.parametrize(
    ("claim", "value", "error"),
    [
        ("jti", 123, InvalidJTIError),
        ("sub", ["alice"], InvalidSubjectError),
        ("iat", "yesterday", jwt.InvalidIssuedAtError),
        ("exp", "tomorrow", jwt.DecodeError),
    ],
)
def test_claims_of_the_wrong_type_are_rejected(
    verifier: RevocationVerifier, now: float, claim: str, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        verifier.verify(sign(claims_for(now, **{claim: value})))


def test_non_string_user_claim_is_rejected(revocations: InMemoryRevocations, now: float) -> None:
    verifier = RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], user_claim="uid")

    with pytest.raises(jwt.InvalidTokenError, match="uid claim must be a string"):
        verifier.verify(sign(claims_for(now, uid=42)))


def test_issuer_and_audience_are_checked(revocations: InMemoryRevocations, now: float) -> None:
    verifier = RevocationVerifier(
        revocations, key=KEY, algorithms=["HS256"], issuer="auth", audience="api"
    )

    assert verifier.verify(sign(claims_for(now, iss="auth", aud="api")))["aud"] == "api"
    with pytest.raises(jwt.InvalidIssuerError):
        verifier.verify(sign(claims_for(now, iss="evil", aud="api")))
    with pytest.raises(jwt.InvalidAudienceError):
        verifier.verify(sign(claims_for(now, iss="auth", aud="other")))


# -- the lifetime rule --------------------------------------------------------------------


def test_token_living_longer_than_max_lifetime_is_rejected(
    verifier: RevocationVerifier, now: float
) -> None:
    iat = int(now) - 10

    with pytest.raises(TokenLifetimeExceededError) as caught:
        verifier.verify(sign(claims_for(now, iat=iat, exp=iat + LIFETIME + 1)))

    assert isinstance(caught.value, jwt.InvalidTokenError)
    assert isinstance(caught.value, RevocationError)


def test_token_living_exactly_max_lifetime_is_accepted(
    verifier: RevocationVerifier, now: float
) -> None:
    iat = int(now) - 10
    claims = claims_for(now, iat=iat, exp=iat + LIFETIME)

    assert verifier.verify(sign(claims)) == claims


def test_without_iat_the_lifetime_is_measured_from_the_verifier_clock(
    revocations: InMemoryRevocations, now: float
) -> None:
    verifier_clock = FakeClock(now)
    verifier = RevocationVerifier(
        revocations, key=KEY, algorithms=["HS256"], leeway=5, clock=verifier_clock
    )
    claims = claims_for(now, iat=None, exp=int(now) + LIFETIME + 5)
    token = sign(claims)

    assert verifier.verify(token) == claims

    verifier_clock.now = now - 1
    with pytest.raises(TokenLifetimeExceededError):
        verifier.verify(token)


def test_without_iat_a_too_long_lifetime_is_rejected_with_the_real_clock(
    verifier: RevocationVerifier, now: float
) -> None:
    with pytest.raises(TokenLifetimeExceededError):
        verifier.verify(sign(claims_for(now, iat=None, exp=int(now) + LIFETIME + 120)))


# -- construction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"algorithms": []}, "at least one algorithm", id="no-algorithms"),
        pytest.param({"algorithms": ["none"]}, "unsigned", id="none"),
        pytest.param({"algorithms": ["HS256", "NONE"]}, "unsigned", id="NONE-among-others"),
        pytest.param({"algorithms": [""]}, "unsigned", id="empty-name"),
        pytest.param({"algorithms": "HS256"}, "not a string", id="str"),
        pytest.param({"leeway": SKEW + 1}, "exceeds", id="leeway-over-skew"),
        pytest.param({"leeway": timedelta(seconds=SKEW + 1)}, "exceeds", id="leeway-timedelta"),
        pytest.param({"leeway": -1}, "negative", id="negative-leeway"),
        pytest.param({"require": ["iat"]}, "'exp' must be required", id="require-no-exp"),
        pytest.param({"require": []}, "'exp' must be required", id="require-nothing"),
    ],
)
def test_unsafe_configuration_is_refused(
    revocations: InMemoryRevocations, kwargs: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"key": KEY, "algorithms": ["HS256"]} | kwargs

    with pytest.raises(ConfigurationError, match=message) as caught:
        RevocationVerifier(revocations, **arguments)

    assert isinstance(caught.value, ValueError)


def test_leeway_equal_to_the_skew_is_allowed(revocations: InMemoryRevocations) -> None:
    verifier = RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], leeway=SKEW)

    assert verifier.leeway == SKEW


def test_repr_does_not_contain_the_key(verifier: RevocationVerifier) -> None:
    assert KEY not in repr(verifier)
    assert KEY not in str(verifier)
    assert "HS256" in repr(verifier)


def test_in_memory_revocations_expire_with_their_clock(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, clock: FakeClock, now: float
) -> None:
    token = sign(claims_for(now))
    revocations.apply(revoke_jti("jti-1", now + 600))
    clock.advance(600 + SKEW - 1)
    assert revocations.expire() == 0
    with pytest.raises(TokenRevokedError):
        verifier.verify(token)

    clock.advance(1)

    assert revocations.expire() == 1
    assert len(revocations.state) == 0


# -- fuzz ---------------------------------------------------------------------------------

_JTIS = ["jti-revoked", "jti-live", "jti-other"]
_USERS = ["alice", "bob", "carol", "dave"]


@functools.cache
def _fuzz_world() -> tuple[float, InMemoryRevocations, RevocationVerifier]:
    """One verifier for every example: jti-revoked, alice's cutoff and bob's deletion."""
    now = float(math.floor(time.time()) - 2)
    revocations = InMemoryRevocations(
        max_token_lifetime=LIFETIME, max_clock_skew=SKEW, clock=FakeClock(now)
    )
    revocations.apply(
        revoke_jti("jti-revoked", now + 3000),
        revoke_user("alice", now - 100),
        delete_user("bob", now - 200),
        revoke_user("bob", now - 50),
    )
    verifier = RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], leeway=10)
    return now, revocations, verifier


@dataclass(frozen=True)
class Offset:
    """A time claim, in seconds from the fuzz world's ``now``."""

    seconds: float


def _resolve(value: object, now: float) -> object:
    if isinstance(value, Offset):
        whole = now + value.seconds
        return int(whole) if float(value.seconds).is_integer() else whole
    if isinstance(value, dict):
        return {k: _resolve(v, now) for k, v in value.items()}
    return value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.integers().map(str)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=5,
)


def _mostly(draw: st.DrawFn, usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
    """Nine times in ten a value from ``usual``, else one from ``odd``."""
    return draw(usual) if draw(st.integers(0, 9)) else draw(odd)


def _sometimes(draw: st.DrawFn, in_ten: int) -> bool:
    return draw(st.integers(0, 9)) < in_ten


# Offsets keep clear of the instants where the outcome depends on how long the run has taken
# (exp reached, iat no longer in the future, exp - time.time() crossing the lifetime), so a
# failing example replays the same way. The fuzz world's ``now`` is taken when it starts.
_valid_exp = st.integers(300, 3300).map(Offset)
_exp_offsets = st.one_of(
    _valid_exp,
    _valid_exp,
    _valid_exp,
    st.floats(300, 3300).map(lambda s: Offset(round(s, 3))),
    st.integers(3900, 4500).map(Offset),  # lives too long when iat is missing
    st.integers(-300, -1).map(Offset),  # expired
)
_past_iat = st.integers(-4000, 0).map(Offset)
_iat_offsets = st.one_of(
    _past_iat,
    _past_iat,
    _past_iat,
    st.floats(-400, 0).map(lambda s: Offset(round(s, 3))),
    st.integers(300, 600).map(Offset),  # in the future
)


@st.composite
def _payloads(draw: st.DrawFn) -> object:
    """Mostly claim sets PyJWT accepts, so the revocation check runs; sometimes anything."""
    if not _sometimes(draw, 9):
        return draw(_json)
    claims: dict[str, object] = {}
    if _sometimes(draw, 9):
        claims["exp"] = _mostly(draw, _exp_offsets, _scalars)
    if _sometimes(draw, 8):
        claims["iat"] = _mostly(draw, _iat_offsets, _scalars)
    if _sometimes(draw, 9):
        claims["sub"] = _mostly(draw, st.sampled_from(_USERS), _scalars)
    if _sometimes(draw, 7):
        claims["jti"] = _mostly(draw, st.sampled_from(_JTIS), _scalars)
    if not _sometimes(draw, 9):
        extra = draw(st.sampled_from(["nbf", "aud", "iss", "extra"]))
        claims[extra] = draw(_iat_offsets | _json)
    return claims


@st.composite
def _headers(draw: st.DrawFn) -> object:
    if not _sometimes(draw, 9):
        return draw(_json)
    algorithms = st.sampled_from(["none", "None", "HS512", "RS256", "", "hs256"]) | _json
    header: dict[str, object] = {"alg": _mostly(draw, st.just("HS256"), algorithms)}
    if _sometimes(draw, 5):
        header["typ"] = "JWT"
    if not _sometimes(draw, 9):
        header |= draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "typ": _json,
                    "kid": st.text(max_size=5) | _json,
                    "crit": st.just(["b64"]) | _json,
                    "b64": st.booleans() | _json,
                },
            )
        )
    return header


_odd_signers = st.sampled_from(["wrong-key", "no-signature", "random"])


@st.composite
def _signed_tokens(draw: st.DrawFn) -> tuple[object, object, str, bytes]:
    header = draw(_headers())
    payload = draw(_payloads())
    signer = _mostly(draw, st.just("right-key"), _odd_signers)
    random_signature = draw(st.binary(max_size=40)) if signer == "random" else b""
    return header, payload, signer, random_signature


def _assemble(spec: tuple[object, object, str, bytes], now: float) -> str:
    header, payload, signer, random_signature = spec
    signing_input = f"{_b64(_json_bytes(header))}.{_b64(_json_bytes(_resolve(payload, now)))}"
    if signer == "no-signature":
        return signing_input + "."
    if signer == "random":
        return f"{signing_input}.{_b64(random_signature)}"
    key = KEY if signer == "right-key" else WRONG_KEY
    mac = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="


@st.composite
def _mutations(draw: st.DrawFn) -> tuple[object, str, int, str]:
    payload = draw(_payloads())
    action = draw(st.sampled_from(["truncate", "replace", "insert", "drop-segment", "swap"]))
    return payload, action, draw(st.integers(0, 400)), draw(st.sampled_from(_B64_ALPHABET))


def _mutate(spec: tuple[object, str, int, str], now: float) -> str:
    payload, action, position, char = spec
    real = _assemble(({"alg": "HS256", "typ": "JWT"}, payload, "right-key", b""), now)
    position %= len(real)
    if action == "truncate":
        return real[:position]
    if action == "replace":
        return real[:position] + char + real[position + 1 :]
    if action == "insert":
        return real[:position] + char + real[position:]
    header, body, signature = real.split(".")
    if action == "drop-segment":
        return f"{header}.{signature}"
    return f"{body}.{header}.{signature}"


_fuzz_inputs = st.one_of(
    st.text(max_size=60).map(lambda t: ("text", t)),
    st.text(st.characters(categories=["Cs", "Ll", "Po"]), max_size=20).map(lambda t: ("text", t)),
    st.text(_B64_ALPHABET, max_size=120).map(lambda t: ("text", t)),
    st.binary(max_size=60).map(lambda b: ("bytes", b)),
    _signed_tokens().map(lambda s: ("signed", s)),
    _signed_tokens().map(lambda s: ("signed", s)),
    _signed_tokens().map(lambda s: ("signed", s)),
    _payloads().map(lambda p: ("signed", ({"alg": "none", "typ": "JWT"}, p, "no-signature", b""))),
    _mutations().map(lambda m: ("mutated", m)),
)

ALLOWED_ERRORS: tuple[type[jwt.InvalidTokenError], ...] = (
    jwt.DecodeError,  # includes InvalidSignatureError
    jwt.InvalidAlgorithmError,
    jwt.ExpiredSignatureError,
    jwt.ImmatureSignatureError,
    jwt.InvalidIssuedAtError,
    jwt.InvalidAudienceError,
    jwt.InvalidIssuerError,
    InvalidSubjectError,
    InvalidJTIError,
    jwt.MissingRequiredClaimError,
    TokenRevokedError,
    TokenLifetimeExceededError,
)
"""PyJWT's documented InvalidTokenError subclasses, and the two this package adds."""


def _token_for(kind: str, spec: Any, now: float) -> tuple[str | bytes, object]:
    if kind == "signed":
        return _assemble(spec, now), _resolve(spec[1], now)
    if kind == "mutated":
        return _mutate(spec, now), _resolve(spec[0], now)
    return spec, None


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_fuzz_inputs)
def test_fuzz_verify_returns_claims_or_raises_an_invalid_token_error(
    fuzz_input: tuple[str, Any],
) -> None:
    now, revocations, verifier = _fuzz_world()
    kind, spec = fuzz_input
    token, claims_sent = _token_for(kind, spec, now)

    outcome: dict[str, Any] | jwt.InvalidTokenError
    try:
        outcome = verifier.verify(token)
    except jwt.InvalidTokenError as err:
        outcome = err

    if isinstance(outcome, jwt.InvalidTokenError):
        event(type(outcome).__name__)
        # PyJWT raises the base class itself for a bad kid or crit header, and the verifier
        # for a user or time claim of the wrong type; any other subclass would be undocumented.
        assert isinstance(outcome, ALLOWED_ERRORS) or type(outcome) is jwt.InvalidTokenError, (
            f"undocumented {type(outcome).__name__}: {outcome}"
        )
        if isinstance(outcome, TokenRevokedError):
            jti, user = _string_claim(claims_sent, "jti"), _string_claim(claims_sent, "sub")
            assert outcome.reason == revocations.state.check(jti, user, _iat(claims_sent))
        return

    event("accepted")
    assert _json_bytes(outcome) == _json_bytes(claims_sent)  # NaN != NaN, so compare the JSON
    assert (
        revocations.state.check(outcome.get("jti"), outcome.get("sub"), outcome.get("iat")) is None
    )
    if isinstance(outcome.get("iat"), int | float):
        assert outcome["exp"] - outcome["iat"] <= LIFETIME


def _string_claim(claims: object, name: str) -> str | None:
    value = claims.get(name) if isinstance(claims, dict) else None
    return value if isinstance(value, str) else None


def _iat(claims: object) -> float | None:
    value = claims.get("iat") if isinstance(claims, dict) else None
    return value if isinstance(value, int | float) else None


# -- claims and options PyJWT lets through --------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        pytest.param("exp", "+600", id="exp-numeric-string"),
        pytest.param("iat", "-60", id="iat-numeric-string"),
        pytest.param("iat", True, id="iat-bool"),
        pytest.param("exp", 10**400, id="exp-too-large-for-a-float"),
        pytest.param("iat", -(10**400), id="iat-too-small-for-a-float"),
    ],
)
def test_time_claims_that_only_pass_int_are_invalid_tokens(
    verifier: RevocationVerifier, now: float, claim: str, value: object
) -> None:
    """PyJWT checks exp and iat with int(), so "123", True and 10**400 reach check_claims."""
    if isinstance(value, str):
        value = str(int(now) + int(value))

    with pytest.raises(jwt.InvalidTokenError, match=claim):
        verifier.verify(sign(claims_for(now, **{claim: value})))


def test_huge_exp_without_iat_is_an_invalid_token(verifier: RevocationVerifier, now: float) -> None:
    with pytest.raises(jwt.InvalidTokenError, match="exp"):
        verifier.verify(sign(claims_for(now, iat=None, exp=10**400)))


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"require": []}, id="require-nothing"),
        pytest.param({"require": ["iat"]}, id="require-without-exp"),
        pytest.param({"verify_exp": False}, id="verify-exp-off"),
        pytest.param({"verify_signature": False}, id="verify-signature-off"),
    ],
)
def test_options_cannot_switch_off_the_checks(
    revocations: InMemoryRevocations, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], options=options)


@pytest.mark.parametrize("leeway", [math.nan, math.inf], ids=["nan", "inf"])
def test_leeway_must_be_finite(revocations: InMemoryRevocations, leeway: float) -> None:
    with pytest.raises(ConfigurationError, match="finite"):
        RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], leeway=leeway)


def test_harmless_options_are_passed_to_pyjwt(revocations: InMemoryRevocations, now: float) -> None:
    verifier = RevocationVerifier(
        revocations, key=KEY, algorithms=["HS256"], options={"verify_exp": True, "strict_aud": True}
    )

    assert verifier.verify(sign(claims_for(now)))["sub"] == "alice"


def test_token_with_a_lone_surrogate_is_a_decode_error(verifier: RevocationVerifier) -> None:
    with pytest.raises(jwt.DecodeError):
        verifier.verify("\ud800.e30.e30")


# -- size and clock skew --------------------------------------------------------------------


def test_an_oversized_token_is_refused_before_decoding(
    revocations: InMemoryRevocations, now: float
) -> None:
    verifier = RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], max_token_bytes=2048)
    small = sign(claims_for(now))
    assert verifier.verify(small)["sub"] == "alice"
    big = sign(claims_for(now, padding="x" * 4096))
    with pytest.raises(jwt.DecodeError, match="more than max_token_bytes=2048"):
        verifier.verify(big)


def test_leeway_accepts_a_token_just_past_exp_and_still_enforces_its_revocation(
    revocations: InMemoryRevocations,
) -> None:
    real_now = time.time()
    exp = int(real_now) - 5
    claims: dict[str, Any] = {"sub": "alice", "jti": "late", "iat": real_now - 600, "exp": exp}
    token = sign(claims)
    strict = RevocationVerifier(revocations, key=KEY, algorithms=["HS256"])
    lenient = RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], leeway=10)
    with pytest.raises(jwt.ExpiredSignatureError):
        strict.verify(token)
    assert lenient.verify(token)["jti"] == "late"

    revocations.apply(revoke_jti("late", exp))
    revocations.expire()  # the entry outlives exp by max_clock_skew, which covers leeway
    with pytest.raises(TokenRevokedError):
        lenient.verify(token)


# -- the verified-token cache -------------------------------------------------------------


def _outcome(verifier: RevocationVerifier, token: str | bytes) -> object:
    """The claims, or the error's type and message: what a caller can observe."""
    try:
        return verifier.verify(token)
    except jwt.InvalidTokenError as err:
        return (type(err), str(err))


@functools.cache
def _uncached_twin() -> RevocationVerifier:
    _, revocations, _ = _fuzz_world()
    return RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], leeway=10, cache_size=0)


@settings(max_examples=3_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_fuzz_inputs)
def test_fuzz_a_cached_verify_answers_exactly_as_an_uncached_one(
    fuzz_input: tuple[str, Any],
) -> None:
    now, _, cached = _fuzz_world()
    kind, spec = fuzz_input
    token, _ = _token_for(kind, spec, now)

    expected = _outcome(_uncached_twin(), token)
    first = _outcome(cached, token)
    second = _outcome(cached, token)  # served from the cache when the first call passed

    assert first == expected
    assert second == expected


def test_a_cached_token_is_checked_against_revocations_on_every_call(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, now: float
) -> None:
    token = sign(claims_for(now))
    verifier.verify(token)
    assert len(verifier._cache) == 1

    revocations.apply(revoke_jti("jti-1", now + 600))

    with pytest.raises(TokenRevokedError):
        verifier.verify(token)


def test_a_cached_token_expires_on_the_verifier_clock(
    revocations: InMemoryRevocations, clock: FakeClock, now: float
) -> None:
    verifier = RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], clock=clock)
    token = sign(claims_for(now))
    verifier.verify(token)

    clock.advance(599)
    assert verifier.verify(token)["jti"] == "jti-1"
    clock.advance(1)
    with pytest.raises(jwt.ExpiredSignatureError, match="Signature has expired"):
        verifier.verify(token)
    assert verifier._cache == {}


def test_a_cached_token_expires_after_the_leeway(
    revocations: InMemoryRevocations, clock: FakeClock, now: float
) -> None:
    verifier = RevocationVerifier(
        revocations, key=KEY, algorithms=["HS256"], leeway=30, clock=clock
    )
    token = sign(claims_for(now))
    verifier.verify(token)

    clock.advance(629)
    assert verifier.verify(token)["jti"] == "jti-1"
    clock.advance(1)
    with pytest.raises(jwt.ExpiredSignatureError):
        verifier.verify(token)


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_a_cached_token_is_not_valid_before_nbf_or_iat_on_the_verifier_clock(
    revocations: InMemoryRevocations, now: float, claim: str
) -> None:
    clock = FakeClock(now)
    verifier = RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], clock=clock)
    token = sign(claims_for(now, **{claim: int(now)}))
    verifier.verify(token)

    clock.now = now - 1  # a clock set back below the claim
    with pytest.raises(jwt.ImmatureSignatureError, match=f"not yet valid \\({claim}\\)"):
        verifier.verify(token)
    clock.now = now
    assert verifier.verify(token)["jti"] == "jti-1"


def test_set_key_forgets_tokens_verified_with_the_old_key(
    verifier: RevocationVerifier, now: float
) -> None:
    old = sign(claims_for(now))
    verifier.verify(old)

    verifier.set_key(WRONG_KEY)

    with pytest.raises(jwt.InvalidSignatureError):
        verifier.verify(old)
    new = sign(claims_for(now), key=WRONG_KEY)
    assert verifier.verify(new)["jti"] == "jti-1"


def test_editing_returned_claims_never_reaches_the_cache(
    verifier: RevocationVerifier, now: float
) -> None:
    claims = claims_for(now, roles=["reader"], profile={"team": "a", "tags": ["x"]})
    token = sign(claims)

    first = verifier.verify(token)
    first["roles"].append("admin")
    first["profile"]["tags"].append("y")
    first["sub"] = "mallory"
    second = verifier.verify(token)
    second["roles"].append("admin")

    assert verifier.verify(token) == claims


def test_the_cache_holds_at_most_cache_size_tokens_dropping_the_oldest(
    revocations: InMemoryRevocations, now: float
) -> None:
    verifier = RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], cache_size=3)
    tokens = [sign(claims_for(now, jti=f"jti-{i}")) for i in range(5)]
    for token in tokens:
        verifier.verify(token)

    assert list(verifier._cache) == tokens[2:]


def test_cache_size_zero_turns_the_cache_off(revocations: InMemoryRevocations, now: float) -> None:
    verifier = RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], cache_size=0)
    token = sign(claims_for(now))

    assert verifier.verify(token)["jti"] == "jti-1"
    assert verifier.verify(token)["jti"] == "jti-1"
    assert verifier._cache == {}


def test_rejected_tokens_are_not_cached(verifier: RevocationVerifier, now: float) -> None:
    for token in (sign(claims_for(now), key=WRONG_KEY), sign(claims_for(now, exp=int(now) - 5))):
        with pytest.raises(jwt.InvalidTokenError):
            verifier.verify(token)
    assert verifier._cache == {}


def test_negative_cache_size_is_refused(revocations: InMemoryRevocations) -> None:
    with pytest.raises(ConfigurationError, match="cache_size"):
        RevocationVerifier(revocations, key=KEY, algorithms=["HS256"], cache_size=-1)


def test_verify_counts_its_outcomes(
    verifier: RevocationVerifier, revocations: InMemoryRevocations, now: float
) -> None:
    good, revoked = sign(claims_for(now)), sign(claims_for(now, jti="gone"))
    revocations.apply(revoke_jti("gone", now + 600))
    verifier.verify(good)
    verifier.verify(good)  # from the cache
    for token in (revoked, "garbage"):
        with pytest.raises(jwt.InvalidTokenError):
            verifier.verify(token)

    assert verifier.accepted == 2
    assert verifier.rejected == {"token_revoked": 1, "invalid": 1}


# -- nesting ---------------------------------------------------------------------------------


def _nested(depth: int) -> Any:
    """A value whose lists nest ``depth`` levels (1: a flat list)."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@settings(max_examples=200, deadline=None)
@given(depth=st.integers(1, 900), cache=st.booleans(), as_object=st.booleans())
def test_claims_nested_past_the_bound_are_an_invalid_token_never_a_crash(
    depth: int, cache: bool, as_object: bool
) -> None:
    now = float(math.floor(time.time()) - 2)
    verifier = RevocationVerifier(
        InMemoryRevocations(max_token_lifetime=LIFETIME),
        key=KEY,
        algorithms=["HS256"],
        cache_size=4 if cache else 0,
    )
    value = _nested(depth)
    if as_object:
        value = {"deep": value}  # one level more
    token = jwt.encode(claims_for(now, x=value), KEY, algorithm="HS256")
    levels = 1 + depth + as_object  # the claims object is level 1

    for _ in range(2):  # the second time from the verified-token cache, if any
        verdict = verifier.decide(token)
        if levels <= MAX_CLAIM_DEPTH:
            assert verdict.accepted
        else:
            assert (verdict.outcome, verdict.reason) == ("rejected", "DecodeError")
            assert f"deeper than {MAX_CLAIM_DEPTH} levels" in verdict.detail


def test_a_token_nested_past_the_interpreters_recursion_limit_is_a_decode_error(
    now: float, verifier: RevocationVerifier
) -> None:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    deep = b"[" * 20_000 + b"]" * 20_000
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(deep)
    signing_input = f"{header}.{payload}".encode()
    signature = b64(hmac.new(KEY.encode(), signing_input, hashlib.sha256).digest())
    token = f"{header}.{payload}.{signature}"

    with pytest.raises(jwt.DecodeError):
        verifier.verify(token)
    deep_header = f"{b64(deep)}.{payload}.{signature}"
    resolver = RevocationVerifier(
        InMemoryRevocations(max_token_lifetime=LIFETIME),
        key_resolver=lambda header: KEY,
        algorithms=["HS256"],
    )
    with pytest.raises(jwt.DecodeError):
        resolver.verify(deep_header)
