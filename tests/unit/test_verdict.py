"""One verdict per token (RevocationVerifier.decide) and its bearer rendering."""

from __future__ import annotations

import time

import jwt
import pytest

from jwt_revocation.consumer import InMemoryRevocations, RevocationVerifier, Verdict
from jwt_revocation.consumer._verdict import MISSING_TOKEN, bearer_answer, bearer_token
from jwt_revocation.shared import SidecarUnavailableError, TokenRevoked
from jwt_revocation.shared._events import to_datetime

KEY = "verdict-test-signing-key-0123456789abcdef"


class _Closed(InMemoryRevocations):
    def ensure_usable(self) -> None:
        raise SidecarUnavailableError("revocation state unavailable (stale): test", reason="stale")


def _token(jti: str = "j1", **claims: object) -> str:
    now = int(time.time())
    return jwt.encode(
        {"sub": "alice", "jti": jti, "iat": now - 10, "exp": now + 600, **claims},
        KEY,
        algorithm="HS256",
    )


def _verifier(source: InMemoryRevocations | None = None) -> RevocationVerifier:
    return RevocationVerifier(
        source or InMemoryRevocations(max_token_lifetime="1h"), key=KEY, algorithms=["HS256"]
    )


def test_an_accepted_token_carries_its_claims() -> None:
    verdict = _verifier().decide(_token())

    assert verdict.accepted
    assert verdict.claims["sub"] == "alice"
    assert verdict.as_dict() == {"verdict": "accepted", "jti": "j1", "sub": "alice"}


def test_a_revoked_token_says_by_which_event() -> None:
    source = InMemoryRevocations(max_token_lifetime="1h")
    source.apply(
        TokenRevoked(
            issuer="t",
            occurred_at=to_datetime(time.time(), name="t"),
            jti="j1",
            user_id="alice",
            expires_at=to_datetime(time.time() + 600, name="t"),
        )
    )
    verdict = _verifier(source).decide(_token())

    assert (verdict.outcome, verdict.reason) == ("revoked", "token_revoked")
    assert not verdict.claims
    answer = bearer_answer(verdict)
    assert answer.status == 401
    assert answer.body["error_description"] == "the token is revoked (token_revoked)"
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


def test_an_invalid_token_is_rejected_by_its_error_class() -> None:
    verdict = _verifier().decide(_token() + "x")

    assert (verdict.outcome, verdict.reason) == ("rejected", "InvalidSignatureError")
    answer = bearer_answer(verdict)
    assert (answer.status, answer.body["error"]) == (401, "invalid_token")


def test_an_undecidable_state_is_unavailable_and_503() -> None:
    verdict = _verifier(_Closed(max_token_lifetime="1h")).decide(_token())

    assert (verdict.outcome, verdict.reason) == ("unavailable", "stale")
    answer = bearer_answer(verdict)
    assert answer.status == 503
    assert answer.headers["Retry-After"] == "1"
    assert "WWW-Authenticate" not in answer.headers


def test_decide_claims_checks_only_the_revocation_part() -> None:
    now = int(time.time())
    claims = {"sub": "bob", "jti": "j9", "iat": now, "exp": now + 60}

    assert _verifier().decide_claims(claims).accepted
    too_long = {**claims, "exp": now + 7200}
    assert _verifier().decide_claims(too_long).reason == "TokenLifetimeExceededError"


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "bearer"])
def test_a_missing_bearer_token_is_401_without_an_error_code(header: str | None) -> None:
    verdict = _verifier().decide(bearer_token(header))

    assert verdict is MISSING_TOKEN
    answer = bearer_answer(verdict)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert answer.headers["Cache-Control"] == "no-store"


def test_bearer_token_reads_the_scheme_case_blind() -> None:
    assert bearer_token("bEaReR  abc ") == "abc"


def test_a_verdict_never_holds_the_token() -> None:
    token = _token()
    verdict = _verifier().decide(token + "x")

    assert token not in repr(verdict)
    assert token not in str(bearer_answer(verdict))
    assert isinstance(verdict, Verdict)
