"""``jwt-revocation check`` renders the verifier's one verdict: its JSON and its exit status."""

from __future__ import annotations

import argparse
import time
from typing import Any

import jwt
import pytest

from jwt_revocation.cli._check import EXIT_STATUS, _rendered, _verdict
from jwt_revocation.consumer import InMemoryRevocations, RevocationVerifier, Verdict
from jwt_revocation.shared import (
    AllTokensRevoked,
    SessionRevoked,
    SidecarUnavailableError,
    TokenRevoked,
)
from jwt_revocation.shared._events import to_datetime

KEY = "cli-check-test-signing-key-0123456789abcdef"


class _Stale(InMemoryRevocations):
    def ensure_usable(self) -> None:
        raise SidecarUnavailableError("revocation state unavailable (stale): test", reason="stale")


def _source() -> InMemoryRevocations:
    source = InMemoryRevocations(max_token_lifetime="1h")
    now = time.time()
    source.apply(
        TokenRevoked(
            issuer="t",
            occurred_at=to_datetime(now, name="t"),
            jti="gone",
            user_id="alice",
            expires_at=to_datetime(now + 600, name="t"),
        )
    )
    return source


def _token(jti: str) -> str:
    now = int(time.time())
    claims = {"sub": "alice", "jti": jti, "iat": now - 10, "exp": now + 600}
    return jwt.encode(claims, KEY, algorithm="HS256")


def _args(jti: str | None = None, user: str | None = None, **more: Any) -> argparse.Namespace:
    fields: dict[str, Any] = {"issued_at": None, "session": None, "token_issuer": None, **more}
    return argparse.Namespace(jti=jti, user=user, **fields)


def _judged(
    token: str | None, *, signed: bool, source: InMemoryRevocations | None = None
) -> Verdict:
    verifier = RevocationVerifier(source or _source(), key=KEY, algorithms=["HS256"])
    return _verdict(_args(jti="gone"), verifier, token, signed)


@pytest.mark.parametrize(
    ("jti", "signed", "status", "body"),
    [
        # The JSON of earlier releases: a revocation's reason says all.
        ("gone", True, 1, {"verdict": "revoked", "reason": "token_revoked"}),
        # Without a key the claims are judged unverified.
        ("kept", False, 0, {"verdict": "accepted", "jti": "kept", "sub": "alice"}),
    ],
)
def test_a_token_exits_with_its_verdict(
    jti: str, signed: bool, status: int, body: dict[str, object]
) -> None:
    verdict = _judged(_token(jti), signed=signed)

    assert EXIT_STATUS[verdict.outcome] == status
    assert _rendered(verdict, signed) == {**body, "signature_checked": signed}


@pytest.mark.parametrize("signed", [True, False])
def test_a_malformed_token_is_rejected(signed: bool) -> None:
    verdict = _judged("not.a.token", signed=signed)

    assert (verdict.outcome, verdict.reason) == ("rejected", "DecodeError")
    assert EXIT_STATUS[verdict.outcome] == 1
    assert "not.a.token" not in str(_rendered(verdict, signed))


def test_ids_are_judged_by_is_revoked() -> None:
    verifier = RevocationVerifier(_source(), key=KEY, algorithms=["HS256"])

    revoked = _verdict(_args(jti="gone"), verifier, None, False)
    accepted = _verdict(_args(jti="kept", user="bob"), verifier, None, False)

    assert (revoked.outcome, revoked.reason) == ("revoked", "token_revoked")
    assert _rendered(accepted, None) == {"verdict": "accepted", "jti": "kept", "sub": "bob"}


def test_a_session_and_an_issuers_cutoff_are_judged_by_ids() -> None:
    source = _source()
    now = time.time()
    at = to_datetime(now, name="t")
    source.apply(
        SessionRevoked(issuer="t", occurred_at=at, user_id="alice", session_id="s1", not_before=at),
        AllTokensRevoked(issuer="t", occurred_at=at, not_before=at, token_issuer="https://a"),
    )
    verifier = RevocationVerifier(source, key=KEY, algorithms=["HS256"])

    def reason(**ids: Any) -> str | None:
        return _verdict(_args(**ids), verifier, None, False).reason

    assert reason(session="s1", issued_at=now - 10) == "session_revoked"
    assert reason(session="s1", issued_at=now + 10) is None
    assert reason(token_issuer="https://a", issued_at=now - 10) == "all_tokens_revoked"
    assert reason(token_issuer="https://b", issued_at=now - 10) is None


@pytest.mark.parametrize("token", [None, "a-token"])
def test_a_state_that_cannot_decide_exits_3(token: str | None) -> None:
    verdict = _judged(
        None if token is None else _token("any"),
        signed=True,
        source=_Stale(max_token_lifetime="1h"),
    )

    assert (verdict.outcome, verdict.reason) == ("unavailable", "stale")
    assert EXIT_STATUS[verdict.outcome] == 3
