"""Signed snapshots with no network: the signed bytes, every one-byte change, key rotation,
key rules, and how the settings and the sidecar take the keys."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from pydantic import SecretStr

from jwt_revocation.consumer import RedisSnapshots, RevocationSidecar, SnapshotError
from jwt_revocation.consumer._snapshot import SnapshotKeys, signed_message
from jwt_revocation.shared import (
    ConfigurationError,
    RevocationSettings,
    SecurityEventVerifier,
)

OLD = "k1:" + "o" * 40
NEW = "k2:" + "n" * 40
OTHER_K1 = "k1:" + "x" * 40
"""Another secret under the same key id as ``OLD``."""
HEADER = {"format": 1, "topic": "auth.revocations", "offsets": {"0": 17, "1": 4}}
BODY = b"  \x78\x01compressed state, any bytes \x00\xff"
"""Starts with spaces: a header that swallows them is still JSON (see the splice test)."""
NOWHERE = "redis://127.0.0.1:1/0"
"""A Redis that is never reached: nothing here connects."""
SET_SECRET = "a-shared-secret-for-hs256-of-32-bytes!"


def _stored(fields: Mapping[str, bytes]) -> dict[bytes, bytes]:
    """The fields as a Redis client without decode_responses returns them."""
    return {name.encode(): value for name, value in fields.items()}


def _sealed(keys: str = OLD) -> dict[bytes, bytes]:
    return _stored(SnapshotKeys.parse(keys).seal(HEADER, BODY))


def _reason(keys: str | SnapshotKeys, fields: Mapping[bytes, bytes]) -> str | None:
    """None when ``keys`` accept ``fields``, else the reason they are refused."""
    ring = SnapshotKeys.parse(keys) if isinstance(keys, str) else keys
    try:
        ring.verify(fields, "s1")
    except SnapshotError as err:
        return err.reason
    return None


def _flipped(value: bytes, position: int, mask: int) -> bytes:
    return value[:position] + bytes([value[position] ^ mask]) + value[position + 1 :]


# -- the signed bytes ----------------------------------------------------------------------


def test_the_signed_message_is_the_context_then_header_and_body_each_after_its_length() -> None:
    assert signed_message(b"{}", b"xyz") == (
        b"jwt-revocation snapshot v1\n"
        + b"\x00\x00\x00\x00\x00\x00\x00\x02{}"
        + b"\x00\x00\x00\x00\x00\x00\x00\x03xyz"
    )


def test_moving_bytes_between_header_and_body_changes_the_signed_message() -> None:
    header, body = b'{"a":1}', b" body"

    assert signed_message(header + body[:1], body[1:]) != signed_message(header, body)
    assert signed_message(header[:-1], header[-1:] + body) != signed_message(header, body)


def test_a_sealed_snapshot_names_its_key_and_verifies() -> None:
    fields = _sealed()

    assert json.loads(fields[b"header"]) == {**HEADER, "key_id": "k1"}
    assert fields[b"body"] == BODY
    assert len(fields[b"mac"]) == 64
    assert _reason(OLD, fields) is None


# -- forgeries -----------------------------------------------------------------------------


@pytest.mark.parametrize("field", [b"header", b"body", b"mac"])
def test_any_one_byte_change_is_forged(field: bytes) -> None:
    sealed = _sealed()
    keys = SnapshotKeys.parse(OLD)
    reasons = {
        _reason(keys, {**sealed, field: _flipped(sealed[field], position, mask)})
        for position in range(len(sealed[field]))
        for mask in (0x01, 0x80)
    }

    assert reasons == {"forged"}


def test_a_byte_moved_from_the_body_into_the_header_is_forged() -> None:
    sealed = _sealed()
    spliced = {**sealed, b"header": sealed[b"header"] + b" ", b"body": BODY[1:]}
    json.loads(spliced[b"header"])  # still a readable header naming k1: only the MAC can tell

    assert _reason(OLD, spliced) == "forged"


def test_an_unsigned_snapshot_is_refused_as_unsigned() -> None:
    unsigned = {b"header": json.dumps(HEADER).encode(), b"body": BODY}
    named = {b"header": json.dumps({**HEADER, "key_id": "k1"}).encode(), b"body": BODY}

    assert _reason(OLD, unsigned) == "unsigned"
    assert _reason(OLD, named) == "unsigned"  # a key id alone proves nothing


def test_a_snapshot_signed_with_another_secret_under_the_same_key_id_is_forged() -> None:
    assert _reason(OLD, _sealed(OTHER_K1)) == "forged"


@pytest.mark.parametrize(
    "header",
    [json.dumps(HEADER).encode(), b'{"key_id": 1}', b"[1]", b"{not json", b"[" * 100_000],
    ids=["no-key-id", "number", "list", "not-json", "nested-too-deep"],
)
def test_a_mac_without_a_readable_key_id_is_forged(header: bytes) -> None:
    fields = {b"header": header, b"body": BODY, b"mac": _sealed()[b"mac"]}

    assert _reason(OLD, fields) == "forged"


# -- rotation ------------------------------------------------------------------------------


def test_a_rotated_ring_signs_with_the_new_key_and_still_accepts_the_old_one() -> None:
    rotated = f"{NEW},{OLD}"
    old_snapshot = _sealed(OLD)
    new_snapshot = _sealed(rotated)

    assert json.loads(new_snapshot[b"header"])["key_id"] == "k2"
    assert _reason(rotated, old_snapshot) is None
    assert _reason(rotated, new_snapshot) is None
    assert _reason(NEW, new_snapshot) is None


def test_a_key_id_the_reader_does_not_hold_is_forged() -> None:
    assert _reason(NEW, _sealed(OLD)) == "forged"  # the old key was dropped from the ring
    assert _reason(OLD, _sealed(NEW)) == "forged"  # a reader not yet given the new key
    with pytest.raises(SnapshotError, match=r"names key id 'k1', not one of .*\['k2'\]"):
        SnapshotKeys.parse(NEW).verify(_sealed(OLD), "s1")


def test_signing_key_id_picks_the_signer_of_a_mapping_or_text() -> None:
    secrets: dict[str, bytes | str] = {"k1": b"o" * 32, "k2": "n" * 32}

    assert SnapshotKeys(secrets).signing_key_id == "k1"
    assert SnapshotKeys(secrets, signing_key_id="k2").key_ids == ["k2", "k1"]
    assert SnapshotKeys.parse(f"{OLD},{NEW}", signing_key_id="k2").signing_key_id == "k2"
    with pytest.raises(ConfigurationError, match="signing_key_id 'k3'"):
        SnapshotKeys(secrets, signing_key_id="k3")


# -- key rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("k1:" + "s" * 31, "shorter than 32 bytes"),
        ("k1:" + "s" * 40 + ",k2:short-secret-value", "'k2' is shorter than 32 bytes"),
        ("s" * 31, "'default' is shorter than 32 bytes"),
        (f"{OLD},", "entry 2 is not kid:secret"),
        ("bad kid!:" + "s" * 40, "entry 1 is not kid:secret"),
        (f"{OLD},k1:" + "t" * 40, "'k1' is listed twice"),
        ("", "'default' is shorter than 32 bytes"),
        ("s" * 40 + ",k2:" + "s" * 40, "entry 1 is not kid:secret"),
    ],
    ids=[
        "short",
        "second-short",
        "one-short-secret",
        "empty-entry",
        "bad-kid",
        "twice",
        "empty",
        "no-kid-in-a-list",
    ],
)
def test_malformed_or_short_keys_are_refused_without_showing_the_secret(
    text: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as raised:
        SnapshotKeys.parse(text)

    assert "s" * 20 not in str(raised.value)
    assert "short-secret" not in str(raised.value)


def test_a_key_of_exactly_32_bytes_is_accepted_as_text_or_bytes() -> None:
    assert SnapshotKeys.parse("k1:" + "s" * 32).key_ids == ["k1"]
    assert SnapshotKeys({"k1": b"\x00" * 32}).key_ids == ["k1"]
    with pytest.raises(ConfigurationError, match="shorter than 32 bytes"):
        SnapshotKeys({"k1": b"\x00" * 31})
    with pytest.raises(ConfigurationError, match="at least one key"):
        SnapshotKeys({})


def test_one_secret_as_bytes_or_as_text_is_a_key_under_the_default_key_id() -> None:
    secret = bytes(range(32))
    by_bytes = RedisSnapshots(NOWHERE, key=secret)
    by_text = RedisSnapshots(NOWHERE, key="ab" * 32)  # `openssl rand -hex 32`
    by_mapping = RedisSnapshots(NOWHERE, key={"default": secret})

    assert by_bytes.keys is not None
    assert by_text.keys is not None
    assert by_mapping.keys is not None
    assert by_bytes.keys.key_ids == by_text.keys.key_ids == ["default"]
    assert repr(by_bytes).endswith("key_ids=['default'])")
    sealed = _stored(by_bytes.keys.seal(HEADER, BODY))
    assert _reason(by_mapping.keys, sealed) is None
    assert _reason(by_text.keys, sealed) == "forged"  # the same id, another secret


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (42, "a snapshot key is one secret .* got int"),
        (["k1", "s" * 40], "a snapshot key is one secret .* got list"),
        ({"k1": 64}, "'k1': a secret is bytes or str; got int"),
        (b"short", "'default' is shorter than 32 bytes"),
    ],
    ids=["int", "list", "int-secret", "short-bytes"],
)
def test_any_other_key_is_a_clear_configuration_error(key: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RedisSnapshots(NOWHERE, key=key)  # type: ignore[arg-type]


def test_a_store_takes_text_or_a_mapping_and_shows_only_key_ids() -> None:
    by_text = RedisSnapshots(NOWHERE, key=f"{NEW},{OLD}")
    by_mapping = RedisSnapshots(NOWHERE, key={"k1": "o" * 40, "k2": "n" * 40}, signing_key_id="k2")
    plain = RedisSnapshots(NOWHERE)

    for store in (by_text, by_mapping):
        assert store.signed
        assert store.keys is not None
        assert store.keys.key_ids == ["k2", "k1"]
        assert "key_ids=['k2', 'k1']" in repr(store)
        assert "nnnn" not in repr(store) + repr(store.keys)
        assert "oooo" not in repr(store) + repr(store.keys)
    assert not plain.signed
    assert plain.keys is None
    with pytest.raises(ConfigurationError, match="no key was given"):
        RedisSnapshots(NOWHERE, signing_key_id="k1")


# -- settings and the sidecar --------------------------------------------------------------


def test_the_snapshot_key_setting_reaches_the_sidecars_store_and_stays_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JWT_REVOCATION_REDIS_URL", NOWHERE)
    monkeypatch.setenv("JWT_REVOCATION_SNAPSHOT_KEY", f"{NEW},{OLD}")
    settings = RevocationSettings()

    sidecar = RevocationSidecar.from_settings(settings)

    assert sidecar.snapshots is not None
    assert sidecar.snapshots.keys is not None
    assert sidecar.snapshots.keys.key_ids == ["k2", "k1"]
    shown = repr(settings) + repr(sidecar.snapshots) + str(settings.model_dump())
    assert "nnnn" not in shown
    assert "oooo" not in shown


def test_without_the_setting_the_sidecars_store_is_unsigned() -> None:
    settings = RevocationSettings(redis_url=NOWHERE)  # type: ignore[arg-type]

    sidecar = RevocationSidecar.from_settings(settings)

    assert sidecar.snapshots is not None
    assert not sidecar.snapshots.signed


def _signed_events(signed_only: bool) -> SecurityEventVerifier:
    return SecurityEventVerifier(
        SET_SECRET, issuer="auth", algorithms=["HS256"], signed_only=signed_only
    )


def test_a_signed_only_sidecar_refuses_a_store_without_a_key() -> None:
    def sidecar(store: RedisSnapshots | None, signed_only: bool) -> RevocationSidecar:
        return RevocationSidecar(
            "127.0.0.1:9092",
            max_token_lifetime=3600,
            snapshots=store,
            security_events=_signed_events(signed_only),
        )

    with pytest.raises(ConfigurationError, match=r"signed_only.*JWT_REVOCATION_SNAPSHOT_KEY"):
        sidecar(RedisSnapshots(NOWHERE), signed_only=True)
    assert sidecar(RedisSnapshots(NOWHERE, key=OLD), signed_only=True).snapshots is not None
    assert sidecar(None, signed_only=True).snapshots is None
    assert sidecar(RedisSnapshots(NOWHERE), signed_only=False).snapshots is not None


def test_signed_only_settings_without_a_snapshot_key_are_refused() -> None:
    settings = RevocationSettings(
        redis_url=NOWHERE,  # type: ignore[arg-type]
        set_verify_key=SET_SECRET,  # type: ignore[arg-type]
        set_algorithm="HS256",
        signed_only=True,
    )

    with pytest.raises(ConfigurationError, match="no key") as raised:
        RevocationSidecar.from_settings(settings)
    assert SET_SECRET not in str(raised.value)
    keyed = RevocationSidecar.from_settings(
        settings.model_copy(update={"snapshot_key": SecretStr(OLD)})
    )
    assert keyed.snapshots is not None
    assert keyed.snapshots.signed
