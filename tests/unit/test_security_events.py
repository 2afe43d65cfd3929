"""Security Event Tokens: the mapping both ways, and every way a SET is refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jwt_revocation.shared import (
    ACCOUNT_DISABLED,
    ACCOUNT_PURGED,
    ALL_TOKENS_REVOKED,
    CREDENTIAL_CHANGE,
    MAX_RECORD_BYTES,
    SESSION_REVOKED,
    AllTokensRevoked,
    ConfigurationError,
    Event,
    RecordError,
    RevocationSettings,
    SecurityEventSigner,
    SecurityEventVerifier,
    SessionRevoked,
    TokenRevoked,
    UserDeleted,
    UserTokensRevoked,
    decode_event,
    encode_event,
)
from jwt_revocation.shared._events import looks_like_set, record_key
from jwt_revocation.shared._security_events import parse_key

ISSUER = "https://auth.example.com/"
LIFETIME = 3600.0
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SECRET = "a-shared-secret-for-hs256-of-32-bytes!"
NOW = datetime(2026, 11, 27, 9, 30, 15, 250_000, tzinfo=UTC)


def _public_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _verifier(**kwargs: Any) -> SecurityEventVerifier:
    kwargs.setdefault("issuer", ISSUER)
    kwargs.setdefault("algorithms", ["ES256"])
    return SecurityEventVerifier(kwargs.pop("key", EC_KEY.public_key()), **kwargs)


def _decode(token: str | bytes, verifier: SecurityEventVerifier | None = None) -> Event:
    return (verifier or _verifier()).decode(token, max_token_lifetime=LIFETIME)


def _refusal(token: str | bytes, verifier: SecurityEventVerifier | None = None) -> RecordError:
    with pytest.raises(RecordError) as caught:
        _decode(token, verifier)
    return caught.value


def _events() -> list[Event]:
    envelope: dict[str, Any] = {"issuer": ISSUER, "occurred_at": NOW}
    return [
        TokenRevoked(
            jti="jti-1", user_id="u-1", expires_at=NOW + timedelta(minutes=20), **envelope
        ),
        UserTokensRevoked(user_id="u-2", not_before=NOW - timedelta(seconds=3), **envelope),
        UserTokensRevoked(user_id="u-3", not_before=NOW, cause="credential_change", **envelope),
        UserTokensRevoked(user_id="u-4", not_before=NOW, cause="account_disabled", **envelope),
        UserDeleted(user_id="u-5", at=NOW.replace(microsecond=0), **envelope),
        SessionRevoked(user_id="u-6", session_id="sess-6", not_before=NOW, **envelope),
        AllTokensRevoked(not_before=NOW, **envelope),
        AllTokensRevoked(not_before=NOW, token_issuer="https://idp.example.com/", **envelope),
        TokenRevoked(
            jti="jti-9",
            user_id="u-9",
            expires_at=NOW + timedelta(minutes=20),
            token_issuer="https://idp.example.com/",
            **envelope,
        ),
    ]


EVENT_IDS = [
    "logout",
    "everywhere",
    "credential",
    "disabled",
    "deleted",
    "session",
    "everyone",
    "one-issuer",
    "issuer-jti",
]


def _sign(
    claims: dict[str, Any], *, key: Any = EC_KEY, algorithm: str = "ES256", **headers: Any
) -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers={"typ": "secevent+jwt", **headers})


def _foreign(
    uri: str, payload: dict[str, Any], sub_id: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A SET as another SSF transmitter writes it."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "jti": "756E69717565206964656E746966696572",
        "iat": 1_800_000_100,
        "txn": "8675309",
        "events": {uri: payload},
    }
    if sub_id is not None:
        claims["sub_id"] = sub_id
    return claims


USER = {"format": "iss_sub", "iss": ISSUER, "sub": "jane"}
FOREIGN_ENVELOPE: dict[str, Any] = {
    "event_id": "756E69717565206964656E746966696572",
    "issuer": ISSUER,
    "occurred_at": datetime.fromtimestamp(1_800_000_100, UTC),
}
"""The envelope of the events that :func:`_foreign` SETs map to."""


# -- the mapping, both ways -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "public", "algorithm"),
    [
        (EC_KEY, EC_KEY.public_key(), "ES256"),
        (RSA_KEY, _public_pem(RSA_KEY), "RS256"),
        (SECRET, SECRET, "HS256"),
    ],
    ids=["ES256", "RS256", "HS256"],
)
@pytest.mark.parametrize("index", range(len(EVENT_IDS)), ids=EVENT_IDS)
def test_every_event_survives_a_round_trip(
    key: Any, public: Any, algorithm: str, index: int
) -> None:
    event = _events()[index]
    token = SecurityEventSigner(key, algorithm=algorithm, audience="svc", key_id="k1").encode(event)
    verifier = _verifier(key=public, algorithms=[algorithm], audience="svc")
    assert verifier.decode_record(token.encode(), max_token_lifetime=LIFETIME) == event


@pytest.mark.parametrize(
    ("index", "uri", "extra"),
    [
        (0, SESSION_REVOKED, {"token_exp"}),
        (1, SESSION_REVOKED, set()),
        (2, CREDENTIAL_CHANGE, {"credential_type", "change_type"}),
        (3, ACCOUNT_DISABLED, set()),
        (4, ACCOUNT_PURGED, set()),
        (5, SESSION_REVOKED, set()),
        (6, ALL_TOKENS_REVOKED, set()),
        (7, ALL_TOKENS_REVOKED, {"token_issuer"}),
        (8, SESSION_REVOKED, {"token_exp"}),
    ],
)
def test_each_event_is_written_as_the_documented_shared_signals_event(
    index: int, uri: str, extra: set[str]
) -> None:
    event = _events()[index]
    token = SecurityEventSigner(EC_KEY, algorithm="ES256", key_id="k1").encode(event)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header == {"alg": "ES256", "typ": "secevent+jwt", "kid": "k1"}
    assert list(claims["events"]) == [uri]
    payload = claims["events"][uri]
    assert set(payload) == {"event_timestamp"} | extra
    assert claims["iss"] == event.issuer
    assert claims["jti"] == event.event_id
    if isinstance(event, AllTokensRevoked):
        assert claims["sub_id"] == {"format": "opaque", "id": event.token_issuer or "*"}
        assert payload.get("token_issuer") == event.token_issuer
        return
    user = {"format": "iss_sub", "iss": ISSUER, "sub": event.user_id}
    if isinstance(event, TokenRevoked):
        assert claims["sub_id"] == {
            "format": "complex",
            "user": user,
            "session": {"format": "jwt_id", "iss": event.token_issuer or ISSUER, "jti": event.jti},
        }
        assert payload["token_exp"] == event.expires_at.timestamp()
    elif isinstance(event, SessionRevoked):
        assert claims["sub_id"] == {
            "format": "complex",
            "user": user,
            "session": {"format": "opaque", "id": event.session_id},
        }
    else:
        assert claims["sub_id"] == user
    if index == 4:
        assert isinstance(payload["event_timestamp"], int)  # whole seconds stay integers


def test_a_session_revoked_naming_a_session_id_from_another_transmitter_revokes_that_session() -> (
    None
):
    # CAEP 1.0's own example names the session so: {"format": "opaque", "id": ...}.
    sub_id = {"format": "complex", "user": USER, "session": {"format": "opaque", "id": "sess-9"}}
    event = _decode(_sign(_foreign(SESSION_REVOKED, {"event_timestamp": 1_800_000_000}, sub_id)))
    assert event == SessionRevoked(
        **FOREIGN_ENVELOPE,
        user_id="jane",
        session_id="sess-9",
        not_before=datetime.fromtimestamp(1_800_000_000, UTC),
    )


@pytest.mark.parametrize(
    ("jwt_issuer", "token_issuer"),
    [(ISSUER, None), ("https://other.example.com/", "https://other.example.com/"), (None, None)],
    ids=["same-issuer-as-the-set", "another-issuer", "no-iss"],
)
def test_a_session_revoked_naming_a_jwt_revokes_that_jti(
    jwt_issuer: str | None, token_issuer: str | None
) -> None:
    session: dict[str, Any] = {"format": "jwt_id", "jti": "jti-9"}
    if jwt_issuer is not None:
        session["iss"] = jwt_issuer
    sub_id = {"format": "complex", "user": USER, "session": session}
    event = _decode(_sign(_foreign(SESSION_REVOKED, {"event_timestamp": 1_800_000_000}, sub_id)))
    assert event == TokenRevoked(
        **FOREIGN_ENVELOPE,
        jti="jti-9",
        user_id="jane",
        # No token_exp: the token cannot outlive the event by more than the longest lifetime.
        expires_at=datetime.fromtimestamp(1_800_000_000 + LIFETIME, UTC),
        # Scoped only when it names another issuer than the SET's: revoking more is safe.
        token_issuer=token_issuer,
    )


def test_an_event_that_names_one_issuers_jti_under_the_sets_issuer_reads_back_unscoped() -> None:
    envelope: dict[str, Any] = {"issuer": ISSUER, "occurred_at": NOW}
    event = TokenRevoked(
        jti="j", user_id="u", expires_at=NOW + timedelta(minutes=5), token_issuer=ISSUER, **envelope
    )
    token = SecurityEventSigner(EC_KEY, algorithm="ES256").encode(event)

    assert _decode(token) == event.model_copy(update={"token_issuer": None})


@pytest.mark.parametrize(
    ("uri", "payload", "expected"),
    [
        (SESSION_REVOKED, {"initiating_entity": "policy"}, ("user_tokens_revoked", None)),
        (
            CREDENTIAL_CHANGE,
            {"credential_type": "fido2-roaming", "change_type": "revoke"},
            ("user_tokens_revoked", "credential_change"),
        ),
        (ACCOUNT_DISABLED, {"reason": "hijacking"}, ("user_tokens_revoked", "account_disabled")),
        (ACCOUNT_PURGED, {}, ("user_deleted", None)),
    ],
)
def test_user_events_from_another_transmitter_map_to_user_revocations(
    uri: str, payload: dict[str, Any], expected: tuple[str, str | None]
) -> None:
    event = _decode(_sign(_foreign(uri, {"event_timestamp": 1_800_000_050, **payload}, USER)))
    assert (event.type, getattr(event, "cause", None)) == expected
    assert record_key(event) == "jane"
    instant = event.at if isinstance(event, UserDeleted) else getattr(event, "not_before", None)
    assert instant == datetime.fromtimestamp(1_800_000_050, UTC)


def test_without_event_timestamp_the_set_issue_time_is_the_revocation_instant() -> None:
    event = _decode(_sign(_foreign(ACCOUNT_DISABLED, {}, USER)))
    assert isinstance(event, UserTokensRevoked)
    assert event.not_before == datetime.fromtimestamp(1_800_000_100, UTC)


def test_the_legacy_subject_inside_the_event_and_opaque_users_are_read() -> None:
    legacy = _foreign(ACCOUNT_PURGED, {"subject": {"format": "opaque", "id": "u-77"}})
    assert record_key(_decode(_sign(legacy))) == "u-77"
    # The draft form of a complex subject: no "format", members only.
    draft = _foreign(
        SESSION_REVOKED,
        {},
        {"user": USER, "session": {"format": "jwt_id", "iss": ISSUER, "jti": "t-1"}},
    )
    event = _decode(_sign(draft))
    assert isinstance(event, TokenRevoked)
    assert (event.jti, event.user_id) == ("t-1", "jane")


def test_a_complex_subject_with_a_device_but_no_session_revokes_every_token_of_the_user() -> None:
    device = {"format": "opaque", "id": "laptop"}
    event = _decode(
        _sign(_foreign(SESSION_REVOKED, {}, {"format": "complex", "user": USER, "device": device}))
    )
    assert isinstance(event, UserTokensRevoked)
    assert event.user_id == "jane"


def test_a_key_set_chooses_the_key_by_kid() -> None:
    jwks = {
        "keys": [
            {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(k.public_key())), "kid": kid}
            for kid, k in (("old", OTHER_EC_KEY), ("new", EC_KEY))
        ]
    }
    verifier = _verifier(key=parse_key(json.dumps(jwks)))
    event = _events()[4]
    assert (
        _decode(
            SecurityEventSigner(EC_KEY, algorithm="ES256", key_id="new").encode(event), verifier
        )
        == event
    )
    wrong = SecurityEventSigner(EC_KEY, algorithm="ES256", key_id="old").encode(event)
    assert _refusal(wrong, verifier).reason == "bad_signature"
    unknown = SecurityEventSigner(EC_KEY, algorithm="ES256", key_id="gone").encode(event)
    assert _refusal(unknown, verifier).reason == "bad_signature"


# -- refusals ----------------------------------------------------------------------------------


def test_a_set_signed_with_another_key_is_refused() -> None:
    forged = SecurityEventSigner(OTHER_EC_KEY, algorithm="ES256").encode(_events()[4])
    err = _refusal(forged)
    assert err.reason == "bad_signature"


def test_a_tampered_set_is_refused() -> None:
    token = SecurityEventSigner(EC_KEY, algorithm="ES256").encode(_events()[1])
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub_id"]["sub"] = "someone-else"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert _refusal(f"{header}.{forged_payload}.{signature}").reason == "bad_signature"


def test_an_unsigned_set_is_refused() -> None:
    event = _events()[4]
    claims = SecurityEventSigner(EC_KEY, algorithm="ES256").claims(event)
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"typ": "secevent+jwt"})
    assert _refusal(unsigned).reason == "unsigned"
    # The same with the signature part cut off a signed SET.
    signed = SecurityEventSigner(EC_KEY, algorithm="ES256").encode(event)
    assert _refusal(signed.rsplit(".", 1)[0] + ".").reason == "unsigned"


def test_the_algorithm_confusion_attack_is_refused() -> None:
    """HS256 'signed' with the verifier's public key, as if it were a shared secret."""
    pem = _public_pem(EC_KEY)
    header = {"alg": "HS256", "typ": "secevent+jwt"}
    claims = SecurityEventSigner(EC_KEY, algorithm="ES256").claims(_events()[4])
    segments = [
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
        for part in (header, claims)
    ]
    signing_input = b".".join(segments)
    signature = jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256).sign(
        signing_input, pem.encode()
    )
    token = signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")
    assert _refusal(token, _verifier(key=pem)).reason == "bad_signature"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"iss": "https://evil.example.com/"}, "InvalidIssuerError"),
        ({"aud": "another-service"}, "InvalidAudienceError"),
        ({"events": None}, "MissingRequiredClaimError"),
        ({"iat": None}, "MissingRequiredClaimError"),
        ({"events": {SESSION_REVOKED: {}, ACCOUNT_PURGED: {}}}, "exactly one event"),
        ({"events": {ACCOUNT_PURGED: "gone"}}, "not an object"),
        ({"sub_id": None}, "no sub_id"),
        ({"sub_id": {"format": "email", "email": "jane@example.com"}}, "use iss_sub or opaque"),
        ({"sub_id": {"format": "iss_sub", "iss": ISSUER}}, "no 'sub' string"),
        (
            {"sub_id": {"format": "complex", "device": {"format": "opaque", "id": "d"}}},
            "without a user",
        ),
        ({"events": {ACCOUNT_PURGED: {"event_timestamp": 1_800_000_000_000}}}, "milliseconds"),
        ({"events": {ACCOUNT_PURGED: {"event_timestamp": "yesterday"}}}, "NumericDate"),
        ({"jti": "x" * 600}, "event_id"),
    ],
)
def test_a_malformed_or_foreign_set_is_refused_with_the_reason(
    change: dict[str, Any], detail: str
) -> None:
    claims = _foreign(ACCOUNT_PURGED, {}, USER) | {"aud": "svc"}
    claims.update(change)
    claims = {k: v for k, v in claims.items() if v is not None}
    err = _refusal(_sign(claims), _verifier(audience="svc"))
    assert err.reason == "invalid_set"
    assert detail in err.detail


def test_a_set_with_the_wrong_typ_is_refused() -> None:
    claims = _foreign(ACCOUNT_PURGED, {}, USER)
    for typ in ("JWT", "at+jwt"):
        token = jwt.encode(claims, EC_KEY, algorithm="ES256", headers={"typ": typ})
        assert _refusal(token).reason == "invalid_set"
    no_typ = jwt.encode(claims, EC_KEY, algorithm="ES256", headers={"typ": ""})
    assert _refusal(no_typ).reason == "invalid_set"


def test_events_that_revoke_nothing_are_unmapped() -> None:
    other = "https://schemas.openid.net/secevent/caep/event-type/assurance-level-change"
    assert _refusal(_sign(_foreign(other, {}, USER))).reason == "unmapped_event"
    created = _foreign(
        CREDENTIAL_CHANGE, {"credential_type": "password", "change_type": "create"}, USER
    )
    assert _refusal(_sign(created)).reason == "unmapped_event"


def test_garbage_that_looks_like_a_jws_is_an_invalid_set() -> None:
    assert _refusal(b"eyJub3Q.anNvbg.c2ln").reason == "invalid_set"


# -- records: SETs among JSON events ------------------------------------------------------------


def test_a_sidecar_without_set_verification_skips_sets_as_unexpected() -> None:
    token = SecurityEventSigner(EC_KEY, algorithm="ES256").encode(_events()[0])
    assert looks_like_set(token.encode())
    with pytest.raises(RecordError) as caught:
        decode_event(token.encode())
    assert caught.value.reason == "unexpected_set"
    with pytest.raises(RecordError) as not_json:
        decode_event(b"plain text")
    assert not_json.value.reason == "not_json"


def test_json_events_pass_unless_only_signed_events_are_accepted() -> None:
    event = _events()[2]
    record = encode_event(event)
    assert _verifier().decode_record(record, max_token_lifetime=LIFETIME) == event
    with pytest.raises(RecordError) as caught:
        _verifier(signed_only=True).decode_record(record, max_token_lifetime=LIFETIME)
    assert caught.value.reason == "unsigned"
    # Records that are no event at all keep their own kinds, signed_only or not.
    for value, kind in ((None, "not_json"), (b"e" * (MAX_RECORD_BYTES + 1), "oversized")):
        with pytest.raises(RecordError) as other:
            _verifier(signed_only=True).decode_record(value, max_token_lifetime=LIFETIME)
        assert other.value.reason == kind


def test_json_events_keep_the_cause_and_old_records_without_it_still_decode() -> None:
    event = _events()[3]
    assert decode_event(encode_event(event)) == event
    old = json.loads(encode_event(event))
    del old["cause"]
    decoded = decode_event(json.dumps(old).encode())
    assert isinstance(decoded, UserTokensRevoked)
    assert decoded.cause is None


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SecurityEventSigner(SECRET, algorithm="none"), "'none' is refused"),
        (lambda: SecurityEventSigner(SECRET, algorithm="XS999"), "unknown algorithm .XS999."),
        (lambda: SecurityEventSigner(SECRET, algorithm="ES256"), "does not suit ES256"),
        (lambda: _verifier(algorithms=[]), "non-empty list"),
        (lambda: _verifier(algorithms="ES256"), "non-empty list"),
        (lambda: _verifier(algorithms=["ES256", "none"]), "'none' is refused"),
        (
            lambda: _verifier(key=_public_pem(EC_KEY), algorithms=["ES256", "HS256"]),
            "does not suit HS256",
        ),
        (lambda: _verifier(issuer=""), "issuer"),
        (lambda: parse_key('{"kty": "nope"}'), "no JWK"),
    ],
)
def test_bad_configuration_is_refused_at_construction(build: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build()


def test_settings_build_a_matching_signer_and_verifier_and_keep_keys_out_of_reprs() -> None:
    settings = RevocationSettings(
        issuer=ISSUER,
        set_signing_key=SECRET,  # type: ignore[arg-type]
        set_verify_key=SECRET,  # type: ignore[arg-type]
        set_algorithm="HS256",
        set_audience="svc",
        set_key_id="k9",
        signed_only=True,
    )
    signer = SecurityEventSigner.from_settings(settings)
    verifier = SecurityEventVerifier.from_settings(settings)
    event = _events()[1]
    assert (
        verifier.decode_record(signer.encode(event).encode(), max_token_lifetime=LIFETIME) == event
    )
    assert verifier.signed_only
    assert SECRET not in repr(signer) + repr(verifier) + repr(settings)
    with pytest.raises(ConfigurationError, match="SET_VERIFY_KEY"):
        SecurityEventVerifier.from_settings(RevocationSettings())
    with pytest.raises(ConfigurationError, match="SET_SIGNING_KEY"):
        SecurityEventSigner.from_settings(RevocationSettings())


@pytest.mark.parametrize(
    "error",
    [
        TypeError("Expecting a EllipticCurvePrivateKey/EllipticCurvePublicKey"),
        ValueError("bad padding"),
        KeyError("kid"),
        RecursionError("maximum recursion depth exceeded"),
        jwt.PyJWKError("Unable to find an algorithm for key"),
    ],
    ids=lambda err: type(err).__name__,
)
def test_what_a_malformed_set_makes_pyjwt_raise_is_a_skipped_invalid_set(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    token = SecurityEventSigner(EC_KEY, algorithm="ES256").encode(_events()[4])

    def malformed(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise error

    monkeypatch.setattr(jwt, "decode", malformed)
    err = _refusal(token)
    assert err.reason == "invalid_set"
    assert err.detail == f"the SET could not be checked: {type(error).__name__}"
    assert err.__cause__ is error


def test_an_unexpected_error_while_checking_a_set_propagates_instead_of_being_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug must not silently drop a revocation: the sidecar sees it and fails closed."""
    token = SecurityEventSigner(EC_KEY, algorithm="ES256").encode(_events()[4])

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("a bug deep in a crypto library")

    monkeypatch.setattr(jwt, "decode", broken)
    with pytest.raises(RuntimeError, match="a bug deep in a crypto library"):
        _decode(token)


def test_a_set_whose_key_is_of_another_family_than_its_alg_is_an_invalid_set() -> None:
    """A key set whose kid names an RSA key, and a SET that says ES256 under that kid."""
    keys = jwt.PyJWKSet.from_dict(
        {
            "keys": [
                {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key())), "kid": "k"}
            ]
        }
    )
    verifier = _verifier(key=keys, algorithms=["ES256", "RS256"])
    token = _sign(_foreign(ACCOUNT_PURGED, {}, USER), kid="k")

    assert _refusal(token, verifier).reason in ("invalid_set", "bad_signature")


def test_a_record_whose_header_nests_too_deep_is_an_invalid_set() -> None:
    header = base64.urlsafe_b64encode(b"[" * 40_000).rstrip(b"=")
    record = header + b".eyJ9.c2ln"
    assert len(record) < MAX_RECORD_BYTES
    assert looks_like_set(record)

    with pytest.raises(RecordError) as caught:
        _verifier().decode_record(record, max_token_lifetime=LIFETIME)
    assert caught.value.reason == "invalid_set"


@pytest.mark.parametrize(
    "stamp", [10**400, float("inf"), float("nan"), True, "1800000000"], ids=repr
)
def test_a_signed_set_whose_timestamp_is_no_finite_number_is_an_invalid_set(stamp: Any) -> None:
    for claims in (
        _foreign(ACCOUNT_PURGED, {}, USER) | {"iat": stamp},
        _foreign(ACCOUNT_PURGED, {"event_timestamp": stamp}, USER),
    ):
        err = _refusal(_sign(claims))
        assert err.reason == "invalid_set"
        assert "NumericDate" in err.detail
