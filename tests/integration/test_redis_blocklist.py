"""The Redis sink and the one-call check, against the real Redis and broker."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import jwt
import pytest
import redis

from jwt_revocation.consumer import (
    RedisBlocklist,
    RedisBlocklistSink,
    SidecarUnavailableError,
    StateSnapshot,
    TokenRevokedError,
)
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import RevocationError, TokenRevoked, UserDeleted, UserTokensRevoked
from tests.integration.conftest import KEY, LIFETIME, SidecarFactory, issue, mixed_events
from tests.support import FakeClock, wait_for

Event = TokenRevoked | UserTokensRevoked | UserDeleted


def _sink(client: redis.Redis, prefix: str) -> RedisBlocklistSink:
    return RedisBlocklistSink(client, prefix=prefix, max_token_lifetime=LIFETIME)


def _blocklist(client: redis.Redis, prefix: str, topic: str, **kwargs: object) -> RedisBlocklist:
    return RedisBlocklist(
        client,
        topic=topic,
        prefix=prefix,
        max_token_lifetime=LIFETIME,
        **kwargs,  # type: ignore[arg-type]
    )


def _redis_state(client: redis.Redis, prefix: str) -> StateSnapshot:
    """The sink's keys read back as a state, with the sidecar's merge rules applied."""

    def read(kind: str) -> dict[str, float]:
        found = {}
        for key in client.scan_iter(match=f"{prefix}:{kind}:*"):
            value = client.get(key)
            assert value is not None
            found[key.decode().split(":", 2)[2]] = float(value)
        return found

    deletions = read("deleted")
    cutoffs = {
        user: t
        for user, t in read("cutoff").items()
        if not (user in deletions and t <= deletions[user])
    }
    jtis = {jti: math.ceil(exp) for jti, exp in read("jti").items()}
    return StateSnapshot(jtis, cutoffs, deletions)


def test_the_sinks_keys_agree_with_a_sidecars_state(
    make_sidecar: SidecarFactory,
    publisher: RevocationPublisher,
    client: redis.Redis,
    prefix: str,
) -> None:
    publisher.publish_many(mixed_events(150))
    sink = _sink(client, prefix)
    sinking = make_sidecar(mirror=sink)
    plain = make_sidecar()

    assert sink.written == 150
    assert sinking.stats().mirrored == 150
    assert _redis_state(client, prefix) == plain.state.snapshot()
    jti, exp = next(iter(plain.state.snapshot().jtis.items()))
    expires_ms = client.pexpiretime(f"{prefix}:jti:{jti}")
    assert abs(expires_ms / 1000 - (exp + 60)) <= 1  # exp + max_clock_skew
    user, at = next(iter(plain.state.snapshot().deletions.items()))
    expires_ms = client.pexpiretime(f"{prefix}:deleted:{user}")
    assert abs(expires_ms / 1000 - (at + LIFETIME.total_seconds() + 60)) <= 1


def test_restarting_the_sink_loses_and_duplicates_nothing(
    make_sidecar: SidecarFactory,
    publisher: RevocationPublisher,
    client: redis.Redis,
    prefix: str,
) -> None:
    publisher.publish_many(mixed_events(100))
    first = make_sidecar(mirror=_sink(client, prefix))
    assert first.stats().mirrored == 100
    first.stop()
    publisher.publish_many(mixed_events(50, start=100))

    again = _sink(client, prefix)
    second = make_sidecar(mirror=again)

    assert again.written == 50
    assert second.stats().mirrored == 50
    assert _redis_state(client, prefix) == make_sidecar().state.snapshot()


class _FailingOnce:
    """A sink whose first write fails, as when Redis drops a connection."""

    def __init__(self, sink: RedisBlocklistSink) -> None:
        self.sink = sink
        self.failures = 0

    def resume_offsets(self, topic: str) -> dict[int, int]:
        return self.sink.resume_offsets(topic)

    def write(
        self, topic: str, events: Sequence[Event], offsets: Mapping[int, int], now: float
    ) -> None:
        if self.failures == 0:
            self.failures += 1
            raise RevocationError("injected: Redis connection lost")
        self.sink.write(topic, events, offsets, now)

    def heartbeat(self, topic: str, now: float) -> None:
        self.sink.heartbeat(topic, now)


def test_a_failed_write_is_retried_and_nothing_is_missed(
    make_sidecar: SidecarFactory,
    publisher: RevocationPublisher,
    client: redis.Redis,
    prefix: str,
) -> None:
    publisher.publish_many(mixed_events(60))
    mirror = _FailingOnce(_sink(client, prefix))

    sidecar = make_sidecar(mirror=mirror, restart_backoff=0.05)

    assert mirror.failures == 1
    assert sidecar.stats().restarts == 1
    assert _redis_state(client, prefix) == sidecar.state.snapshot()


def test_the_one_call_check_agrees_with_the_sidecar(
    make_sidecar: SidecarFactory,
    publisher: RevocationPublisher,
    client: redis.Redis,
    prefix: str,
    topic: str,
) -> None:
    cut_at = math.floor(time.time()) - 30 + 0.25  # a cutoff with a fraction of a second
    publisher.password_changed(user_id="carol", at=cut_at)
    publisher.user_deleted(user_id="dave", at=cut_at)
    publisher.publish_many(mixed_events(80))
    sidecar = make_sidecar(mirror=_sink(client, prefix))
    blocklist = _blocklist(client, prefix, topic)
    state = sidecar.state.snapshot()

    probes: list[tuple[str | None, str | None, float | None]] = [
        (jti, None, None) for jti in list(state.jtis)[:10]
    ]
    probes += [("never-revoked", None, None), (None, None, None)]
    for user in ("carol", "dave", "user-0", "user-7", "nobody"):
        for iat in (None, cut_at - 10, math.floor(cut_at), cut_at - 0.1, cut_at, cut_at + 0.5):
            probes.append((None, user, iat))
            probes.append(("never-revoked", user, iat))
    answers = [(probe, blocklist.check(*probe)) for probe in probes]

    assert answers == [(probe, sidecar.state.check(*probe)) for probe in probes]
    assert {answer for _, answer in answers} == {
        None,
        "token_revoked",
        "user_tokens_revoked",
        "user_deleted",
    }


def test_a_verifier_over_redis_rejects_revoked_tokens(
    make_sidecar: SidecarFactory,
    publisher: RevocationPublisher,
    client: redis.Redis,
    prefix: str,
    topic: str,
) -> None:
    from jwt_revocation.consumer import RevocationVerifier

    make_sidecar(mirror=_sink(client, prefix))
    verifier = RevocationVerifier(_blocklist(client, prefix, topic), key=KEY, algorithms=["HS256"])
    victim, bystander = issue("erin"), issue("frank")
    assert verifier.verify(victim)["sub"] == "erin"

    publisher.revoke_token(jwt.decode(victim, KEY, algorithms=["HS256"]))

    def refused() -> str | None:
        try:
            verifier.verify(victim)
        except TokenRevokedError as err:
            return err.reason
        return None

    assert wait_for(refused) == "token_revoked"
    assert verifier.verify(bystander)["sub"] == "frank"


def test_the_redis_check_fails_closed(
    make_sidecar: SidecarFactory, client: redis.Redis, prefix: str, topic: str
) -> None:
    make_sidecar(mirror=_sink(client, prefix))
    clock = FakeClock(time.time())
    fresh = _blocklist(client, prefix, topic, clock=clock)
    wait_for(lambda: client.get(f"{prefix}:sink:{topic}:heartbeat"))
    assert fresh.check("any", "user", None) is None

    clock.advance(31)  # past max_staleness: the sink stopped reporting
    with pytest.raises(SidecarUnavailableError) as stale:
        fresh.check("any", "user", None)
    assert stale.value.reason == "stale"

    with pytest.raises(SidecarUnavailableError) as never:
        _blocklist(client, prefix, "a-topic-no-sink-reads").check("any", None, None)
    assert never.value.reason == "stale"

    down = redis.Redis("127.0.0.1", 1, socket_connect_timeout=0.5)
    with pytest.raises(SidecarUnavailableError) as failed:
        _blocklist(down, prefix, topic).check("any", None, None)
    assert failed.value.reason == "failed"
