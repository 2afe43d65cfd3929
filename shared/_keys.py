"""Signature keys and algorithms, checked when the object that uses them is built.

PyJWT checks a key only when a token arrives: a verifier built with a private key, a file path
or a certificate accepts its construction, then fails every token with ``AttributeError`` or
``InvalidKeyError`` (neither is a ``jwt.InvalidTokenError``, so each request is a 500).
:func:`check_key` runs PyJWT's own preparation of the key for each algorithm
(``prepare_key``, then ``check_key_length``) once, at construction, and turns every common
mistake into a :class:`ConfigurationError` saying what to pass instead:

* a file path where the key's text is expected: pass the file's contents;
* a private key where a verifier needs the public one (PyJWT verifies RS* and PS* signatures
  only with a public key object), or a public key where a signer needs the private one;
* a certificate: pass its public key; a JWK as JSON or as a dict: pass ``jwt.PyJWK(...)``;
* a key that does not suit one of the algorithms (a secret with RS256, an RSA key with ES256):
  one static key serves one algorithm family;
* an HMAC secret shorter than its hash's output (RFC 7518 section 3.2: 32 bytes for HS256) or
  an RSA key under 2048 bits (section 3.3), which PyJWT only warns about, at every token.

:func:`check_algorithms` refuses an empty list, a bare string, ``none`` and names PyJWT does not
know. Messages never hold key material; they name the role, the algorithm and the key's type.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import (
    EllipticCurvePrivateKey,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey, Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from ._errors import ConfigurationError

KeyRole = Literal["signing", "verification"]
"""What a key is for: a signer needs a private key (or a secret), a verifier a public one."""

_PRIVATE = (RSAPrivateKey, EllipticCurvePrivateKey, Ed25519PrivateKey, Ed448PrivateKey)
_PUBLIC = (RSAPublicKey, EllipticCurvePublicKey, Ed25519PublicKey, Ed448PublicKey)
_KEY_TYPES = (str, bytes, bytearray, *_PRIVATE, *_PUBLIC)
_UNSAFE_ALGORITHMS = ("none", "")

# A name ending like a key file. A base64 or hex secret holds no dot, so an HMAC secret is
# read as a path only when it ends so, or when a file of that name exists.
_KEY_FILE_NAME = re.compile(r"\S+\.(pem|key|pub|crt|cer|der|jwk|jwks|json|txt|p8)", re.IGNORECASE)
# Text that starts as a path does: tried only for the algorithms whose keys are PEM, where no
# secret can be mistaken for one.
_PATH_START = re.compile(r"(~|\.{0,2}/|[A-Za-z]:\\)\S*")
_LONGEST_PATH = 4096

_FAMILIES = {
    "HS": "a shared secret as str or bytes",
    "RS": "an RSA {kind} key: a cryptography key object or its PEM",
    "PS": "an RSA {kind} key: a cryptography key object or its PEM",
    "ES": "an EC {kind} key on the algorithm's curve: a cryptography key object or its PEM",
    "Ed": "an Ed25519 or Ed448 {kind} key: a cryptography key object or its PEM",
}


def check_algorithms(algorithms: Sequence[str], *, what: str = "algorithms") -> list[str]:
    """The algorithm names as a list, or :class:`ConfigurationError` for an empty list, a bare
    string, an algorithm that signs nothing (``none``) or a name PyJWT does not know."""
    if isinstance(algorithms, str | bytes):
        raise ConfigurationError(f"{what} must be a list of names, such as ['RS256'], not a string")
    names = list(algorithms)
    if not names:
        raise ConfigurationError(f"{what} must name at least one algorithm, such as ['RS256']")
    for name in names:
        if not isinstance(name, str) or name.lower() in _UNSAFE_ALGORITHMS:
            raise ConfigurationError(f"algorithm {name!r} accepts unsigned tokens; refusing")
        try:
            jwt.get_algorithm_by_name(name)
        except NotImplementedError:
            known = sorted(a for a in jwt.algorithms.get_default_algorithms() if a != "none")
            raise ConfigurationError(
                f"unknown algorithm {name!r}; PyJWT knows {', '.join(known)}"
            ) from None
    return names


def check_key(key: Any, algorithms: Sequence[str], *, role: KeyRole, what: str) -> None:
    """Raise :class:`ConfigurationError` unless ``key`` can do ``role`` for every algorithm.

    ``key`` is what PyJWT takes: a secret, a PEM, a cryptography key object, or a ``jwt.PyJWK``
    (whose own algorithm must be among ``algorithms``). ``what`` names the key in messages
    (``"the verification key"``); it is never followed by the key itself.
    """
    names = check_algorithms(algorithms)
    if isinstance(key, jwt.PyJWK):
        if key.algorithm_name not in names:
            raise ConfigurationError(
                f"{what} is a JWK for {key.algorithm_name}, which algorithms ({names}) does not "
                "list: tokens signed with it would all be refused"
            )
        names, key = [key.algorithm_name], key.key
    _check_shape(key, names, role=role, what=what)
    for name in names:
        algorithm = jwt.get_algorithm_by_name(name)
        try:
            prepared = algorithm.prepare_key(key)
        except jwt.InvalidKeyError as err:  # PyJWT's own messages hold no key material
            raise _unsuitable(key, names, name, role, what, str(err)) from None
        except (ValueError, TypeError) as err:
            raise _unsuitable(key, names, name, role, what, type(err).__name__) from None
        if role == "verification" and isinstance(prepared, _PRIVATE):
            raise ConfigurationError(
                f"{what} is a private key: a verifier needs only the public one. Pass "
                "key.public_key() (or its PEM, -----BEGIN PUBLIC KEY-----) and keep the private "
                "key with the token issuer"
            )
        if role == "signing" and isinstance(prepared, _PUBLIC):
            raise ConfigurationError(f"{what} is a public key: signing needs the private key")
        too_short = algorithm.check_key_length(prepared)
        if too_short is not None:
            raise ConfigurationError(
                f"{what} is too short for {name}: {too_short} Make a secret with "
                "`openssl rand -hex 32` (64 for HS512), or an RSA key of 2048 bits or more"
            )


def _check_shape(key: Any, names: Sequence[str], *, role: KeyRole, what: str) -> None:
    """The mistakes told apart by the key's type and text alone, before PyJWT sees it."""
    if isinstance(key, jwt.PyJWKSet):
        raise ConfigurationError(
            f"{what} is a key set: give key_resolver=JWKSKeys(url) or jwks_url=, which pick the "
            "key by the token's kid"
        )
    if isinstance(key, dict):
        raise ConfigurationError(f"{what} is a dict: pass a JWK as jwt.PyJWK(jwk)")
    if not isinstance(key, _KEY_TYPES):
        raise ConfigurationError(
            f"{what} is of type {type(key).__name__}; pass {_family(names[0], role)}"
        )
    if isinstance(key, str | bytes | bytearray):
        text = key.decode("utf-8", "replace") if isinstance(key, bytes | bytearray) else key
        stripped = text.strip()
        if not stripped:
            raise ConfigurationError(f"{what} is empty; pass {_family(names[0], role)}")
        if _is_path(stripped, pem_only=not any(n.startswith("HS") for n in names)):
            raise ConfigurationError(
                f"{what} looks like the path of a file, not a key: pass the file's contents "
                "(pathlib.Path(path).read_text())"
            )
        if stripped.startswith("-----BEGIN CERTIFICATE-----"):
            raise ConfigurationError(
                f"{what} is a certificate: pass its public key, "
                "x509.load_pem_x509_certificate(pem).public_key()"
            )
        if stripped.startswith("{") and _is_json_object(stripped):
            raise ConfigurationError(
                f"{what} is a JWK as JSON: pass jwt.PyJWK.from_json(text), or jwks_url= for a "
                "key set"
            )


def _is_json_object(text: str) -> bool:
    # Only text that parses: a random secret of bytes starts with "{" once in 256.
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def _is_path(text: str, *, pem_only: bool) -> bool:
    if "\n" in text or len(text) > _LONGEST_PATH or text.startswith("-----"):
        return False
    try:
        if os.path.isfile(text):
            return True
    except ValueError:  # a NUL byte: no path
        return False
    return bool(_KEY_FILE_NAME.fullmatch(text) or (pem_only and _PATH_START.fullmatch(text)))


def _family(name: str, role: KeyRole) -> str:
    kind = "private" if role == "signing" else "public"
    return _FAMILIES.get(name[:2], "a key PyJWT takes for {name}").format(kind=kind, name=name)


def _unsuitable(
    key: Any, names: Sequence[str], name: str, role: KeyRole, what: str, detail: str
) -> ConfigurationError:
    shown = "text" if isinstance(key, str | bytes | bytearray) else type(key).__name__
    mixed = len({n[:2] for n in names}) > 1
    return ConfigurationError(
        f"{what} ({shown}) does not suit {name} ({detail}): {name} takes {_family(name, role)}"
        + (
            "; one static key serves one algorithm family, list only its algorithms"
            if mixed
            else ""
        )
    )
