"""Reading a key set (``shared._jwks``), without a network: whatever a JWKS endpoint answers,
the usable keys are kept and nothing else escapes but a ``ValueError`` for the whole set."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jwt_revocation.shared._jwks import _parse

GOOD = {
    **json.loads(
        jwt.algorithms.RSAAlgorithm.to_jwk(
            rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        )
    ),
    "kid": "good",
    "use": "sig",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=30,
)
# Entries that look like keys, with any field replaced by any JSON value.
key_like = st.fixed_dictionaries(
    {},
    optional={
        "kty": st.sampled_from(["RSA", "EC", "OKP", "oct", "XYZ"]) | json_values,
        "kid": st.text(max_size=8) | json_values,
        "use": st.sampled_from(["sig", "enc"]) | json_values,
        "n": st.just(GOOD["n"]) | json_values,
        "e": st.just(GOOD["e"]) | json_values,
        "alg": st.sampled_from(["RS256", "ES256", "none"]) | json_values,
        "crv": json_values,
        "x": json_values,
    },
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(key_like | json_values, max_size=6), with_good=st.booleans())
def test_a_key_set_keeps_its_usable_keys_whatever_else_it_holds(
    entries: list[Any], with_good: bool
) -> None:
    document = {"keys": [*entries, GOOD] if with_good else entries}
    try:
        keys, dropped = _parse(json.dumps(document).encode())
    except ValueError:
        assert not with_good
        return
    assert all(kid is None or isinstance(kid, str) for kid in keys)
    assert all(isinstance(why, str) for why in dropped)
    if with_good:
        assert "good" in keys


@given(depth=st.integers(1, 100_000))
def test_a_key_set_nested_any_depth_is_refused_as_a_whole_never_a_crash(depth: int) -> None:
    body = b'{"keys": [' + b"[" * depth + b"]" * depth + b"]}"
    with pytest.raises(ValueError, match=r"nested too deep|no usable signing key"):
        _parse(body)
