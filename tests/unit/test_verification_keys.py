"""A verifier's key is checked when the verifier is built, and a bad key is never a 500.

Each wrong key a newcomer passes (a private key, a file path, garbage, a certificate, a JWK in
the wrong form, a short secret, a key of another family) is a ``ConfigurationError`` at
construction saying what to pass. A key a resolver picks at verify time that cannot verify is
an ``UnknownKeyError`` (a ``jwt.InvalidTokenError``: 401), never an ``AttributeError``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from jwt_revocation.consumer import (
    InMemoryRevocations,
    RevocationVerifier,
    UnknownKeyError,
    claims_only,
)
from jwt_revocation.shared import ConfigurationError
from jwt_revocation.shared._keys import check_key

SECRET = "verification-keys-test-secret-0123456789"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
PRIVATE_KEYS: dict[str, Any] = {"RS256": RSA_KEY, "ES256": EC_KEY, "EdDSA": ED_KEY}


def _pem(key: Any) -> bytes:
    if hasattr(key, "private_bytes"):
        return bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def source() -> InMemoryRevocations:
    return InMemoryRevocations(max_token_lifetime=3600)


def _token(algorithm: str, **claims: Any) -> str:
    now = int(time.time())
    key = SECRET if algorithm.startswith("HS") else PRIVATE_KEYS[algorithm]
    body = {"sub": "alice", "jti": "j-1", "iat": now - 5, "exp": now + 600, **claims}
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": "k1"})


def _build(source: InMemoryRevocations, key: Any, *algorithms: str) -> RevocationVerifier:
    return RevocationVerifier(source, key=key, algorithms=list(algorithms))


# -- the key's right forms verify ------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_a_public_key_as_object_or_pem_verifies(
    source: InMemoryRevocations, algorithm: str
) -> None:
    public = PRIVATE_KEYS[algorithm].public_key()
    token = _token(algorithm)

    for key in (public, _pem(public), _pem(public).decode()):
        assert _build(source, key, algorithm).verify(token)["sub"] == "alice"


def test_a_secret_as_str_or_bytes_and_a_jwk_verify(source: InMemoryRevocations) -> None:
    token = _token("HS256")
    jwk = jwt.PyJWK(json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key())))

    assert _build(source, SECRET, "HS256").verify(token)["sub"] == "alice"
    assert _build(source, SECRET.encode(), "HS256").verify(token)["sub"] == "alice"
    assert _build(source, jwk, "RS256").verify(_token("RS256"))["sub"] == "alice"


# -- the wrong forms are refused at construction, saying what to pass --------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_a_private_key_says_to_pass_the_public_one(
    source: InMemoryRevocations, algorithm: str
) -> None:
    private = PRIVATE_KEYS[algorithm]

    for key in (private, _pem(private), _pem(private).decode()):
        with pytest.raises(ConfigurationError, match=r"private key.*key\.public_key\(\)"):
            _build(source, key, algorithm)


@pytest.mark.parametrize("algorithm", ["RS256", "HS256"])
def test_a_file_path_says_to_pass_the_files_contents(
    source: InMemoryRevocations, tmp_path: Path, algorithm: str
) -> None:
    existing = tmp_path / "public-key"
    existing.write_bytes(_pem(RSA_KEY.public_key()) if algorithm == "RS256" else SECRET.encode())

    for path in (str(existing), str(tmp_path / "missing.pem"), b"/etc/jwt/verify.key"):
        with pytest.raises(ConfigurationError, match=r"path of a file.*file's contents"):
            _build(source, path, algorithm)


def test_an_asymmetric_path_that_does_not_exist_is_told_as_a_path(
    source: InMemoryRevocations,
) -> None:
    with pytest.raises(ConfigurationError, match="path of a file"):
        _build(source, "./keys/jwt-public", "RS256")


def test_an_hmac_secret_that_happens_to_start_with_a_slash_is_a_secret(
    source: InMemoryRevocations,
) -> None:
    # Base64 secrets may start with "/": only an existing file or a key file's name is a path.
    secret = "/" + SECRET

    token = jwt.encode({"exp": int(time.time()) + 60}, secret, algorithm="HS256")
    assert _build(source, secret, "HS256").verify(token)["exp"]


@pytest.mark.parametrize(
    ("key", "algorithm", "message"),
    [
        ("not a key at all", "RS256", r"does not suit RS256 .*RSA public key"),
        (b"\x00\x01garbage", "ES256", r"does not suit ES256 .*EC public key"),
        (42, "RS256", r"of type int; pass an RSA public key"),
        (["a", "list"], "HS256", r"of type list; pass a shared secret"),
        ("", "HS256", r"is empty"),
        ("   ", "RS256", r"is empty"),
        ("short", "HS256", r"too short for HS256.*openssl rand"),
        (SECRET, "HS512", r"too short for HS512"),
        ({"kty": "RSA"}, "RS256", r"a dict: pass a JWK as jwt\.PyJWK"),
        ('{"kty": "oct", "k": "c2VjcmV0"}', "HS256", r"JWK as JSON.*PyJWK\.from_json"),
        (_certificate(RSA_KEY), "RS256", r"certificate: pass its public key"),
        (_pem(RSA_KEY.public_key()), "HS256", r"does not suit HS256"),
        (RSA_KEY.public_key(), "ES256", r"does not suit ES256"),
        (EC_KEY.public_key(), "RS256", r"does not suit RS256"),
    ],
)
def test_a_wrong_key_is_a_configuration_error_naming_what_to_pass(
    source: InMemoryRevocations, key: Any, algorithm: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _build(source, key, algorithm)


def test_a_small_rsa_key_is_refused(source: InMemoryRevocations) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505

    with pytest.raises(ConfigurationError, match="too short for RS256"):
        _build(source, small.public_key(), "RS256")


def test_one_static_key_serves_one_family(source: InMemoryRevocations) -> None:
    with pytest.raises(ConfigurationError, match="one algorithm family"):
        _build(source, RSA_KEY.public_key(), "RS256", "HS256")


def test_a_jwk_for_an_algorithm_not_listed_is_refused(source: InMemoryRevocations) -> None:
    jwk = jwt.PyJWK(json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY.public_key())))

    with pytest.raises(ConfigurationError, match="JWK for ES256"):
        _build(source, jwk, "RS256")
    with pytest.raises(ConfigurationError, match="key set: give key_resolver"):
        _build(source, jwt.PyJWKSet([jwk._jwk_data]), "ES256")


def test_unknown_algorithm_names_are_refused_whatever_the_key_source(
    source: InMemoryRevocations,
) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown algorithm 'RSA256'.*RS256"):
        RevocationVerifier(source, key_resolver=claims_only, algorithms=["RSA256"])
    with pytest.raises(ConfigurationError, match="list of names"):
        RevocationVerifier(source, key=SECRET, algorithms="HS256")


@given(st.binary(min_size=32, max_size=64))
def test_a_random_secret_of_bytes_is_taken_whatever_its_first_byte(secret: bytes) -> None:
    # secrets.token_bytes(32), as the demo makes its key: "{" or "/" first is still a secret.
    # (Neither can be a PEM, an SSH or a DER key, which PyJWT refuses as HMAC secrets.)
    source = InMemoryRevocations(max_token_lifetime=3600)

    for key in (b"{" + secret, b"/" + secret):
        check_key(key, ["HS256"], role="verification", what="the key")
        assert RevocationVerifier(source, key=key, algorithms=["HS256"]).algorithms == ["HS256"]


def test_a_key_resolver_must_be_callable(source: InMemoryRevocations) -> None:
    with pytest.raises(ConfigurationError, match=r"key_resolver must be callable.*key="):
        RevocationVerifier(source, key_resolver=SECRET, algorithms=["HS256"])  # type: ignore[arg-type]


def test_set_key_refuses_a_wrong_key_and_keeps_the_old_one(source: InMemoryRevocations) -> None:
    verifier = _build(source, RSA_KEY.public_key(), "RS256")

    with pytest.raises(ConfigurationError, match="private key"):
        verifier.set_key(RSA_KEY)
    assert verifier.verify(_token("RS256"))["sub"] == "alice"


def test_the_message_never_holds_the_key(source: InMemoryRevocations) -> None:
    for key, algorithm in ((SECRET[:20], "HS256"), (_pem(RSA_KEY).decode(), "RS256")):
        with pytest.raises(ConfigurationError) as caught:
            _build(source, key, algorithm)
        assert key[:20] not in str(caught.value)
        assert "MII" not in str(caught.value)


def test_a_signer_needs_a_private_key() -> None:
    with pytest.raises(ConfigurationError, match="public key: signing needs the private key"):
        check_key(EC_KEY.public_key(), ["ES256"], role="signing", what="the signing key")
    check_key(EC_KEY, ["ES256"], role="signing", what="the signing key")


# -- at verify time: a resolver's unusable key is a 401, never a 500 ----------------------------


@pytest.mark.parametrize(
    "picked",
    [RSA_KEY, "garbage that is no PEM", 12345, None],
    ids=["private-key", "garbage", "int", "none"],
)
def test_a_resolvers_unusable_key_fails_closed_as_an_invalid_token(
    source: InMemoryRevocations, picked: Any, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = RevocationVerifier(source, key_resolver=lambda _: picked, algorithms=["RS256"])
    token = _token("RS256")

    with caplog.at_level(logging.WARNING), pytest.raises(UnknownKeyError, match="cannot verify"):
        verifier.verify(token)
    verdict = verifier.decide(token)

    assert (verdict.outcome, verdict.reason) == ("rejected", "UnknownKeyError")
    assert verifier.rejected["invalid"] == 2
    assert any("key resolver" in r.getMessage() for r in caplog.records)


def test_a_claims_only_verifier_refuses_tokens_and_judges_claims(
    source: InMemoryRevocations,
) -> None:
    verifier = RevocationVerifier(source, key_resolver=claims_only, algorithms=["RS256"])
    now = int(time.time())

    with pytest.raises(UnknownKeyError, match="holds no key"):
        verifier.verify(_token("RS256"))
    assert verifier.decide_claims({"sub": "a", "iat": now, "exp": now + 60}).accepted


# -- the rule for every key: built means every token ends in a verdict -------------------------

_CANDIDATE_KEYS = [
    SECRET,
    SECRET.encode(),
    *(k for private in PRIVATE_KEYS.values() for k in (private, private.public_key())),
    *(_pem(k) for private in PRIVATE_KEYS.values() for k in (private, private.public_key())),
    _certificate(RSA_KEY),
]


@settings(max_examples=150, deadline=None)
@given(
    key=st.one_of(
        st.sampled_from(_CANDIDATE_KEYS),
        st.text(max_size=80),
        st.binary(max_size=80),
        st.integers(),
        st.none(),
    ),
    algorithms=st.lists(
        st.sampled_from(["HS256", "HS384", "RS256", "PS256", "ES256", "EdDSA"]),
        min_size=1,
        max_size=3,
        unique=True,
    ),
    signed_with=st.sampled_from(["HS256", "RS256", "ES256", "EdDSA"]),
)
def test_a_verifier_that_was_built_never_fails_a_token_with_a_500(
    key: Any, algorithms: list[str], signed_with: str
) -> None:
    source = InMemoryRevocations(max_token_lifetime=3600)
    try:
        verifier = RevocationVerifier(source, key=key, algorithms=algorithms)
    except ConfigurationError:
        return
    with contextlib.suppress(jwt.InvalidTokenError):  # a 401: the only other outcome
        verifier.verify(_token(signed_with))
