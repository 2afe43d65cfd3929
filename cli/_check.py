"""``jwt-revocation check``: replay the topic, then render the verifier's verdict on one token.

With a key (``--key-env``), the token is judged by :meth:`RevocationVerifier.decide`; without
one, its claims are read unverified and judged by :meth:`RevocationVerifier.decide_claims` (a
malformed token is ``rejected``). ``--jti``, ``--user``, ``--session``, ``--token-issuer`` and ``--issued-at`` ask
:meth:`RevocationVerifier.is_revoked` instead. The exit status follows the verdict's outcome:
0 accepted, 1 revoked or rejected, 3 unavailable. The token and the key are never printed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import jwt

from jwt_revocation.consumer import RevocationVerifier, SidecarUnavailableError, Verdict
from jwt_revocation.shared import RevocationSettings

from ._command import (
    EXIT_OK,
    EXIT_REVOKED,
    EXIT_UNAVAILABLE,
    Command,
    print_json,
    say_error,
)
from ._kafka import started_sidecar
from ._options import add_verify_key, instant, verifier_for

EXIT_STATUS = {
    "accepted": EXIT_OK,
    "revoked": EXIT_REVOKED,
    "rejected": EXIT_REVOKED,
    "unavailable": EXIT_UNAVAILABLE,
}
"""The exit status of each outcome."""


def _arguments(parser: argparse.ArgumentParser, _settings: RevocationSettings) -> None:
    parser.add_argument("--token", help="the token, or - to read it from standard input")
    parser.add_argument("--jti")
    parser.add_argument("--user")
    parser.add_argument("--session", help="the token's session (its sid claim)")
    parser.add_argument("--token-issuer", help="the token's iss")
    parser.add_argument(
        "--issued-at",
        type=instant,
        help="with --user, --session or --token-issuer: the token's iat",
    )
    add_verify_key(
        parser, used_for="to verify --token with", without="a token's signature is not checked"
    )
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")


def _check(args: argparse.Namespace, settings: RevocationSettings) -> int:
    if not (args.token or args.jti or args.user or args.session or args.issued_at is not None):
        return say_error(args, "give --token, --jti, --user, --session or --issued-at")
    token = sys.stdin.readline().strip() if args.token == "-" else args.token  # noqa: S105 - "-" means stdin
    with started_sidecar(settings, args.timeout) as sidecar:
        verifier, signed = verifier_for(args, sidecar, settings)
        verdict = _verdict(args, verifier, token, signed)
    if args.json:
        print_json(_rendered(verdict, None if token is None else signed))
    else:
        print(verdict.outcome + (f" ({verdict.reason})" if verdict.reason else ""))
    return EXIT_STATUS[verdict.outcome]


def _verdict(
    args: argparse.Namespace, verifier: RevocationVerifier, token: str | None, signed: bool
) -> Verdict:
    if token is None:
        return _by_ids(args, verifier)
    if signed:
        return verifier.decide(token)
    try:
        claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    except jwt.InvalidTokenError as err:
        return Verdict("rejected", type(err).__name__, str(err))
    return verifier.decide_claims(claims)


def _by_ids(args: argparse.Namespace, verifier: RevocationVerifier) -> Verdict:
    """:meth:`RevocationVerifier.is_revoked` as a verdict."""
    try:
        reason = verifier.is_revoked(
            jti=args.jti,
            user_id=args.user,
            issued_at=args.issued_at,
            session_id=args.session,
            token_issuer=args.token_issuer,
        )
    except SidecarUnavailableError as err:
        return Verdict("unavailable", err.reason, str(err))
    if reason is not None:
        return Verdict("revoked", reason)
    return Verdict("accepted", claims={"jti": args.jti, "sub": args.user})


def _rendered(verdict: Verdict, signature_checked: bool | None) -> dict[str, Any]:
    """:meth:`Verdict.as_dict`, and whether a token's signature was checked."""
    body = verdict.as_dict()
    if signature_checked is not None:
        body["signature_checked"] = signature_checked
    return body


CHECK = Command(
    "check",
    "is this token / jti / user revoked? (exit 0 no, 1 yes or rejected, 3 cannot decide)",
    run=_check,
    arguments=_arguments,
    timeout=10.0,
    timeout_help="seconds to reach Kafka and catch up with the topic",
)
