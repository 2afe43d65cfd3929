"""Snapshots in the real Redis: a warm start equals a full replay, and every fallback works."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import redis
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient

from jwt_revocation.consumer import (
    RedisSnapshots,
    RevocationSidecar,
    SnapshotError,
    StateSnapshot,
    render_metrics,
)
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import ConfigurationError, TokenRevoked, UserDeleted, UserTokensRevoked
from tests.integration.conftest import (
    BOOTSTRAP,
    LIFETIME,
    REDIS,
    SidecarFactory,
    issue,
    mixed_events,
    revocation_reason,
)
from tests.support import wait_for

Event = TokenRevoked | UserTokensRevoked | UserDeleted


@pytest.fixture
def snapshots(client: redis.Redis, prefix: str) -> RedisSnapshots:
    """A store under a prefix of this test's own."""
    return RedisSnapshots(client, prefix=prefix, ttl=LIFETIME)


def _applied(sidecar: RevocationSidecar) -> int:
    return sum(sidecar.stats().applied.values())


def _snapshot_taken(
    make_sidecar: SidecarFactory, publisher: RevocationPublisher, snapshots: RedisSnapshots
) -> tuple[str, RevocationSidecar]:
    """120 events, a sidecar that snapshots them, then 80 more events."""
    publisher.publish_many(mixed_events(120))
    writer = make_sidecar(snapshots=snapshots, snapshot_interval=0)
    snapshot_id = writer.save_snapshot()
    publisher.publish_many(mixed_events(80, start=120))
    return snapshot_id, writer


def test_a_warm_start_from_a_snapshot_equals_a_full_replay(
    make_sidecar: SidecarFactory, publisher: RevocationPublisher, snapshots: RedisSnapshots
) -> None:
    snapshot_id, _ = _snapshot_taken(make_sidecar, publisher, snapshots)

    warm = make_sidecar(snapshots=snapshots, snapshot_interval=0)
    cold = make_sidecar()

    assert warm.stats().started_from == f"snapshot {snapshot_id}"
    assert warm.stats().snapshots_unused == {}
    assert cold.stats().started_from == "replay"
    assert warm.state.snapshot() == cold.state.snapshot()
    assert len(warm.state) > 80
    assert _applied(warm) == 80  # the tail only
    assert _applied(cold) == 200


def test_a_caught_up_sidecar_writes_snapshots_on_its_own(
    make_sidecar: SidecarFactory, publisher: RevocationPublisher, snapshots: RedisSnapshots
) -> None:
    publisher.publish_many(mixed_events(50))
    sidecar = make_sidecar(snapshots=snapshots, snapshot_interval=0.2)

    first = wait_for(lambda: sidecar.stats().last_snapshot)
    publisher.publish_many(mixed_events(10, start=50))
    wait_for(lambda: _applied(sidecar) == 60)
    wait_for(lambda: sidecar.stats().last_snapshot != first)
    wait_for(
        lambda: (
            snapshots.load(
                sidecar.topic, max_token_lifetime=3600, max_clock_skew=60, now=time.time()
            ).state
            == sidecar.state.snapshot()
        )
    )


def _edit_header(
    client: redis.Redis,
    snapshots: RedisSnapshots,
    topic: str,
    change: Callable[[dict[str, Any]], None],
) -> None:
    latest = client.get(f"{snapshots.prefix}:{topic}:snapshot:latest")
    assert isinstance(latest, bytes)
    key = f"{snapshots.prefix}:{topic}:snapshot:{latest.decode()}"
    raw = client.hget(key, "header")
    assert isinstance(raw, bytes)
    header = json.loads(raw)
    change(header)
    client.hset(key, "header", json.dumps(header))


def _set(field: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda header: header.__setitem__(field, value)


BROKEN: dict[str, tuple[str, Callable[[redis.Redis, RedisSnapshots, str], object]]] = {
    "body": ("corrupt", lambda c, s, t: c.hset(_latest_key(c, s, t), "body", b"\x00garbage")),
    "header": ("corrupt", lambda c, s, t: c.hset(_latest_key(c, s, t), "header", b"{not json")),
    "counts": ("corrupt", lambda c, s, t: _edit_header(c, s, t, _set("entries", {"x": 1}))),
    "expired": ("missing", lambda c, s, t: c.delete(_latest_key(c, s, t))),
    "topic": ("other_topic", lambda c, s, t: _edit_header(c, s, t, _set("topic", "elsewhere"))),
    "format": ("unsupported_version", lambda c, s, t: _edit_header(c, s, t, _set("format", 99))),
    "schema": (
        "unsupported_version",
        lambda c, s, t: _edit_header(c, s, t, _set("schema_version", 2)),
    ),
    "age": (
        "too_old",
        lambda c, s, t: _edit_header(c, s, t, _set("created_at", time.time() - 3700)),
    ),
    "window": (
        "narrower_window",
        lambda c, s, t: _edit_header(c, s, t, _set("max_token_lifetime", 600)),
    ),
    "partitions": (
        "partitions_changed",
        lambda c, s, t: _edit_header(c, s, t, lambda h: h["offsets"].pop("0")),
    ),
    "deep": ("corrupt", lambda c, s, t: c.hset(_latest_key(c, s, t), "header", b"[" * 100_000)),
    "offset-infinite": (
        "corrupt",
        lambda c, s, t: _edit_header(
            c, s, t, lambda h: h["offsets"].update(dict.fromkeys(h["offsets"], float("inf")))
        ),
    ),
    "created-nan": ("corrupt", lambda c, s, t: _edit_header(c, s, t, _set("created_at", math.nan))),
    "cutoff-infinite": ("corrupt", lambda c, s, t: _edit_body(c, s, t, _infinite_cutoff)),
    "cutoff-huge": ("corrupt", lambda c, s, t: _edit_body(c, s, t, _huge_cutoff)),
    "offsets": (
        "offsets_gone",
        lambda c, s, t: _edit_header(
            c, s, t, lambda h: h["offsets"].update({p: o + 1000 for p, o in h["offsets"].items()})
        ),
    ),
}


def _edit_body(
    client: redis.Redis,
    snapshots: RedisSnapshots,
    topic: str,
    change: Callable[[dict[str, Any]], None],
) -> None:
    """Change the latest snapshot's body, its checksum made to match (an unsigned store)."""
    key = _latest_key(client, snapshots, topic)
    body = json.loads(zlib.decompress(client.hget(key, "body")))  # type: ignore[arg-type]
    change(body)
    packed = zlib.compress(json.dumps(body).encode())
    client.hset(key, "body", packed)
    _edit_header(client, snapshots, topic, _set("body_sha256", hashlib.sha256(packed).hexdigest()))


def _infinite_cutoff(body: dict[str, Any]) -> None:
    user = next(iter(body["cutoffs"]))
    body["cutoffs"][user] = float("inf")  # would make every check of the user raise


def _huge_cutoff(body: dict[str, Any]) -> None:
    user = next(iter(body["cutoffs"]))
    body["cutoffs"][user] = 10**400  # float() of it raises OverflowError


def _latest_key(client: redis.Redis, snapshots: RedisSnapshots, topic: str) -> str:
    latest = client.get(f"{snapshots.prefix}:{topic}:snapshot:latest")
    assert isinstance(latest, bytes)
    return f"{snapshots.prefix}:{topic}:snapshot:{latest.decode()}"


@pytest.mark.parametrize("broken", list(BROKEN))
def test_an_unusable_snapshot_falls_back_to_the_full_replay(
    broken: str,
    make_sidecar: SidecarFactory,
    publisher: RevocationPublisher,
    snapshots: RedisSnapshots,
    client: redis.Redis,
    topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _snapshot_taken(make_sidecar, publisher, snapshots)
    problem, breaks = BROKEN[broken]
    breaks(client, snapshots, topic)

    sidecar = make_sidecar(snapshots=snapshots, snapshot_interval=0)

    assert sidecar.stats().started_from == f"replay ({problem})"
    assert sidecar.stats().snapshots_unused == {problem: 1}
    assert _applied(sidecar) == 200
    assert sidecar.state.snapshot() == make_sidecar().state.snapshot()
    assert f"reason={problem}" in caplog.text


def test_without_any_snapshot_the_sidecar_replays(
    make_sidecar: SidecarFactory, publisher: RevocationPublisher, snapshots: RedisSnapshots
) -> None:
    publisher.publish_many(mixed_events(30))

    sidecar = make_sidecar(snapshots=snapshots, snapshot_interval=0)

    assert sidecar.stats().started_from == "replay (missing)"
    assert _applied(sidecar) == 30


def test_unreachable_redis_falls_back_to_the_full_replay(
    make_sidecar: SidecarFactory, publisher: RevocationPublisher
) -> None:
    publisher.publish_many(mixed_events(30))
    nowhere = RedisSnapshots(redis.Redis("127.0.0.1", 1, socket_connect_timeout=0.5))

    sidecar = make_sidecar(snapshots=nowhere, snapshot_interval=0)

    assert sidecar.stats().started_from == "replay (unreachable)"
    assert _applied(sidecar) == 30
    with pytest.raises(SnapshotError) as raised:
        sidecar.save_snapshot()
    assert raised.value.reason == "unreachable"


def test_a_snapshot_whose_events_the_broker_deleted_is_refused(
    make_sidecar: SidecarFactory,
    publisher: RevocationPublisher,
    snapshots: RedisSnapshots,
    topic: str,
) -> None:
    _snapshot_taken(make_sidecar, publisher, snapshots)
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        parts = [TopicPartition(topic, p) for p in range(3)]
        ends = _end_offsets(parts)
        admin.delete_records({tp: ends[tp] for tp in parts})  # as retention would
    finally:
        admin.close()

    sidecar = make_sidecar(snapshots=snapshots, snapshot_interval=0)

    assert sidecar.stats().started_from == "replay (offsets_gone)"


def _end_offsets(parts: list[TopicPartition]) -> dict[TopicPartition, int]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None)
    try:
        ends: dict[TopicPartition, int] = consumer.end_offsets(parts)
    finally:
        consumer.close()
    return ends


def test_a_reader_never_sees_half_a_snapshot(snapshots: RedisSnapshots) -> None:
    topic = "atomicity"
    written = [
        StateSnapshot(
            {f"jti-{n}-{i}": 2_000_000_000 + i for i in range(2000 * n)},
            {f"user-{n}": 1_800_000_000.5},
            {},
        )
        for n in range(1, 4)
    ]
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            state = written[n % 3]
            snapshots.save(
                topic,
                state,
                {0: n},
                created_at=time.time(),
                max_token_lifetime=3600,
                max_clock_skew=60,
            )
            n += 1

    writer = threading.Thread(target=write)
    writer.start()
    seen: list[str] = []
    problems: list[str] = []
    try:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                loaded = snapshots.load(
                    topic, max_token_lifetime=3600, max_clock_skew=60, now=time.time()
                )
            except SnapshotError as err:
                problems.append(err.reason)  # "missing" before the first write only
                continue
            assert loaded.state in written
            seen.append(loaded.id)
    finally:
        stop.set()
        writer.join()
    assert len(set(seen)) > 3
    assert set(problems) <= {"missing"}


def test_a_client_that_decodes_responses_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="decode_responses"):
        RedisSnapshots(redis.Redis(*REDIS, decode_responses=True))


def test_a_replaced_snapshot_expires_after_the_grace(
    snapshots: RedisSnapshots, client: redis.Redis
) -> None:
    state = StateSnapshot({"a": 2_000_000_000}, {}, {})
    first = snapshots.save(
        "grace", state, {0: 1}, created_at=time.time(), max_token_lifetime=3600, max_clock_skew=60
    )
    second = snapshots.save(
        "grace", state, {0: 2}, created_at=time.time(), max_token_lifetime=3600, max_clock_skew=60
    )

    prefix = f"{snapshots.prefix}:grace:snapshot"
    assert 0 < client.ttl(f"{prefix}:{first}") <= 60
    assert client.ttl(f"{prefix}:{second}") > 3000
    assert client.get(f"{prefix}:latest") == second.encode()


# -- signed snapshots ------------------------------------------------------------------------

SNAPSHOT_KEY = "k1:integration-snapshot-key-k1-0123456789"
ROTATED_KEY = f"k2:integration-snapshot-key-k2-0123456789,{SNAPSHOT_KEY}"
"""k2 signs now; k1, rotated out, still verifies."""
NEW_KEY_ONLY = "k2:integration-snapshot-key-k2-0123456789"
SAME_KID_OTHER_SECRET = "k1:an-attackers-own-secret-of-32-bytes-or-more"
UNKNOWN_KID = "evil:an-attackers-own-secret-of-32-bytes-or-more"

StoreWith = Callable[[str | None], RedisSnapshots]


@pytest.fixture
def store_with(client: redis.Redis, prefix: str) -> StoreWith:
    """Stores under this test's prefix, each with the key given (None: no key)."""
    return lambda key: RedisSnapshots(client, prefix=prefix, ttl=LIFETIME, key=key)


@pytest.fixture
def signed(store_with: StoreWith) -> RedisSnapshots:
    """A store that signs with k1 and accepts only k1."""
    return store_with(SNAPSHOT_KEY)


def _header_of(store: RedisSnapshots, topic: str, snapshot_id: str) -> dict[str, Any]:
    raw = store.client.hget(f"{store.prefix}:{topic}:snapshot:{snapshot_id}", "header")
    assert isinstance(raw, bytes)
    header: dict[str, Any] = json.loads(raw)
    return header


@dataclass
class Revoked:
    """A token revoked after a signed snapshot was taken, and a sidecar that applied both."""

    token: str
    jti: str
    early: str
    """A signed snapshot taken before the revocation."""
    writer: RevocationSidecar
    store: RedisSnapshots

    def key(self, snapshot_id: str) -> str:
        return f"{self.store.prefix}:{self.writer.topic}:snapshot:{snapshot_id}"

    def forge(self, key: str | None) -> str:
        """What a writer to Redis would store, with ``key``, to un-revoke the token: the state
        without its jti, at the end offsets, so the revocation is never replayed."""
        state = self.writer.state.snapshot()
        del state.jtis[self.jti]
        forger = RedisSnapshots(self.store.client, prefix=self.store.prefix, key=key)
        return forger.save(
            self.writer.topic,
            state,
            dict(self.writer.progress.positions),
            created_at=time.time(),
            max_token_lifetime=3600,
            max_clock_skew=60,
        )


def _revoked(
    make_sidecar: SidecarFactory, publisher: RevocationPublisher, signed: RedisSnapshots
) -> Revoked:
    publisher.publish_many(mixed_events(60))
    writer = make_sidecar(snapshots=signed, snapshot_interval=0)
    early = writer.save_snapshot()
    token = issue("alice")
    claims = jwt.decode(token, options={"verify_signature": False})
    publisher.revoke_token(claims)
    wait_for(lambda: revocation_reason(writer, token) == "token_revoked")
    return Revoked(token, claims["jti"], early, writer, signed)


def _offsets_moved_past_the_revocation(revoked: Revoked) -> str:
    """The early signed snapshot, its header's offsets moved to the end; its MAC kept."""
    header = _header_of(revoked.store, revoked.writer.topic, revoked.early)
    header["offsets"] = {str(p): o for p, o in revoked.writer.progress.positions.items()}
    client = revoked.store.client
    client.hset(revoked.key(revoked.early), "header", json.dumps(header))
    client.set(revoked.key("latest"), revoked.early)
    return revoked.early


def _jti_cut_from_the_body(revoked: Revoked) -> str:
    """A signed snapshot with the revocation, its jti cut from the body and the header's
    checksum and counts made to match; its key id and MAC kept."""
    snapshot_id = revoked.writer.save_snapshot()
    header = _header_of(revoked.store, revoked.writer.topic, snapshot_id)
    key = revoked.key(snapshot_id)
    client = revoked.store.client
    body = json.loads(zlib.decompress(client.hget(key, "body")))  # type: ignore[arg-type]
    body["jtis"] = [[exp, [j for j in group if j != revoked.jti]] for exp, group in body["jtis"]]
    packed = zlib.compress(json.dumps(body, separators=(",", ":")).encode())
    header["entries"]["token_revoked"] -= 1
    header["body_sha256"] = hashlib.sha256(packed).hexdigest()
    assert header["key_id"] == "k1"
    client.hset(key, mapping={"header": json.dumps(header), "body": packed})
    return snapshot_id


FORGERIES: dict[str, tuple[str, Callable[[Revoked], str]]] = {
    "without-a-key": ("unsigned", lambda revoked: revoked.forge(None)),
    "same-kid-other-secret": ("forged", lambda revoked: revoked.forge(SAME_KID_OTHER_SECRET)),
    "unknown-kid": ("forged", lambda revoked: revoked.forge(UNKNOWN_KID)),
    "tampered-header": ("forged", _offsets_moved_past_the_revocation),
    "tampered-body": ("forged", _jti_cut_from_the_body),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_a_forged_snapshot_is_refused_and_the_revoked_token_stays_rejected(
    forgery: str,
    make_sidecar: SidecarFactory,
    publisher: RevocationPublisher,
    store_with: StoreWith,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="jwt_revocation")
    signed = store_with(SNAPSHOT_KEY)
    revoked = _revoked(make_sidecar, publisher, signed)
    reason, forge = FORGERIES[forgery]
    forged_id = forge(revoked)
    # The forgery works on a reader without a key: it un-revokes the token.
    fooled = make_sidecar(snapshots=store_with(None), snapshot_interval=0)
    assert fooled.stats().started_from == f"snapshot {forged_id}"
    assert revocation_reason(fooled, revoked.token) is None
    caplog.clear()

    warm = make_sidecar(snapshots=signed, snapshot_interval=0)

    assert warm.stats().started_from == f"replay ({reason})"
    metric = f'jwt_revocation_snapshots_unused_total{{reason="{reason}",sidecar="{warm.name}"}} 1.0'
    assert metric in render_metrics(warm).decode().splitlines()
    assert revocation_reason(warm, revoked.token) == "token_revoked"
    assert warm.state.snapshot() == revoked.writer.state.snapshot()
    refusals = [r for r in caplog.records if f"reason={reason}" in r.getMessage()]
    assert [r.levelno for r in refusals] == [logging.ERROR]
    assert "snapshot-key" not in caplog.text  # no secret in any log line


@pytest.mark.parametrize(
    "reader_key", [ROTATED_KEY, SNAPSHOT_KEY, None], ids=["rotated-out", "signing", "no-key"]
)
def test_a_snapshot_signed_with_a_key_the_reader_lists_is_accepted(
    reader_key: str | None,
    make_sidecar: SidecarFactory,
    publisher: RevocationPublisher,
    signed: RedisSnapshots,
    store_with: StoreWith,
) -> None:
    snapshot_id, writer = _snapshot_taken(make_sidecar, publisher, signed)

    warm = make_sidecar(snapshots=store_with(reader_key), snapshot_interval=0)

    assert warm.stats().started_from == f"snapshot {snapshot_id}"
    assert _applied(warm) == 80  # the tail only
    assert warm.state.snapshot() == writer.state.snapshot()


@pytest.mark.parametrize(
    ("writer_key", "reader_key", "refusal"),
    [
        (SNAPSHOT_KEY, NEW_KEY_ONLY, "names key id 'k1', not one of this reader's ['k2']"),
        (ROTATED_KEY, SNAPSHOT_KEY, "names key id 'k2', not one of this reader's ['k1']"),
    ],
    ids=["rotated-out-and-dropped", "rotated-in-not-yet-given"],
)
def test_a_snapshot_signed_with_a_key_id_the_reader_does_not_hold_is_refused(
    writer_key: str,
    reader_key: str,
    refusal: str,
    make_sidecar: SidecarFactory,
    publisher: RevocationPublisher,
    store_with: StoreWith,
    caplog: pytest.LogCaptureFixture,
) -> None:
    snapshot_id, _ = _snapshot_taken(make_sidecar, publisher, store_with(writer_key))
    assert _header_of(store_with(None), publisher.topic, snapshot_id)["key_id"] == writer_key[:2]

    sidecar = make_sidecar(snapshots=store_with(reader_key), snapshot_interval=0)

    assert sidecar.stats().started_from == "replay (forged)"
    assert _applied(sidecar) == 200
    assert refusal in caplog.text
