"""The Redis sink and the one-call check, against the real Redis and broker."""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from jwt_revocation.consumer import (
    RedisBlocklist,
    RedisBlocklistSink,
    RevocationState,
    SidecarUnavailableError,
    StateSnapshot,
    TokenRevokedError,
)
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import (
    EVENT_TYPES,
    AllTokensRevoked,
    RevocationError,
    SessionRevoked,
    TokenRevoked,
    UserDeleted,
    UserTokensRevoked,
)
from jwt_revocation.shared import Event as AnyEvent
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


# -- the Redis check and the state: one rule set, two copies ---------------------------------

_USERS = ["u0", "u1", "u2"]
_JTIS = ["j0", "j1", "j2"]
_SESSIONS = ["s0", "s1"]
_ISSUERS = ["i0", "i1"]
_LIFETIME_S = LIFETIME.total_seconds()


def _near(draw: st.DrawFn, base: float) -> datetime:
    """An instant within 3 s of ``base`` (a whole second, now), on a quarter second, so that
    cutoffs meet whole-second iats; or, 1 in 10, one that expired long ago."""
    quarter = draw(st.integers(min_value=-12, max_value=12))
    moot = draw(st.integers(min_value=0, max_value=9)) == 0
    seconds = base + quarter / 4 - (2 * _LIFETIME_S if moot else 0)
    return datetime.fromtimestamp(seconds, UTC)


@st.composite
def _events(draw: st.DrawFn, base: float) -> AnyEvent:
    envelope: dict[str, Any] = {"issuer": "props", "occurred_at": datetime.now(UTC)}
    kind = draw(st.sampled_from(["jti", "issuer-jti", "cutoff", "deletion", "session", "all"]))
    user = draw(st.sampled_from(_USERS))
    if kind in ("jti", "issuer-jti"):
        expires = _near(draw, base) + timedelta(seconds=draw(st.sampled_from([600, 900.5, -4000])))
        scope = draw(st.sampled_from(_ISSUERS)) if kind == "issuer-jti" else None
        return TokenRevoked(
            jti=draw(st.sampled_from(_JTIS)),
            user_id=user,
            expires_at=expires,
            token_issuer=scope,
            **envelope,
        )
    if kind == "cutoff":
        return UserTokensRevoked(user_id=user, not_before=_near(draw, base), **envelope)
    if kind == "deletion":
        return UserDeleted(user_id=user, at=_near(draw, base), **envelope)
    if kind == "session":
        session = draw(st.sampled_from(_SESSIONS))
        return SessionRevoked(
            user_id=user, session_id=session, not_before=_near(draw, base), **envelope
        )
    scope = draw(st.sampled_from([None, *_ISSUERS]))
    return AllTokensRevoked(not_before=_near(draw, base), token_issuer=scope, **envelope)


def _instant_of(event: AnyEvent) -> float | None:
    """The cutoff instant of an event that has one (a jti has none)."""
    if isinstance(event, UserDeleted):
        return event.at.timestamp()
    return None if isinstance(event, TokenRevoked) else event.not_before.timestamp()


@st.composite
def _tokens(draw: st.DrawFn, events: list[AnyEvent], base: float) -> tuple[Any, ...]:
    """A token's jti, user, iat, session and iss: each revoked, unknown or missing. The iat is
    often an event's own instant, its whole second or a hair either side: the edges of the
    one-second rule."""
    instants = sorted({t for t in map(_instant_of, events) if t is not None})
    near = [base + quarter / 4 for quarter in range(-14, 15)]
    iat = draw(
        st.one_of(
            st.none(),
            st.sampled_from(near),
            st.sampled_from(instants or near).flatmap(
                lambda t: st.sampled_from(
                    [t, math.floor(t), math.floor(t) - 1, t - 0.125, t + 0.125]
                )
            ),
        )
    )
    return (
        draw(st.sampled_from([None, *_JTIS, "j-never"])),
        draw(st.sampled_from([None, *_USERS, "u-never"])),
        iat,
        draw(st.sampled_from([None, *_SESSIONS, "s-never"])),
        draw(st.sampled_from([None, *_ISSUERS, "i-never"])),
    )


def test_the_redis_check_and_the_state_give_the_same_answer_on_any_events_and_tokens(
    client: redis.Redis, prefix: str
) -> None:
    """Random event streams into both (every kind, moot ones too), random tokens against both:
    the Lua check and RevocationState.check agree on every answer, reason included."""
    answers: Counter[str | None] = Counter()
    base = float(math.floor(time.time()))

    @settings(max_examples=300, deadline=None)
    @given(events=st.lists(_events(base), max_size=12), data=st.data())
    def compare(events: list[AnyEvent], data: st.DataObject) -> None:
        tokens = data.draw(st.lists(_tokens(events, base), min_size=20, max_size=40))
        now = time.time()
        scope = f"{prefix}:{uuid.uuid4().hex[:8]}"  # under the test's prefix: deleted after
        state = RevocationState(max_token_lifetime=_LIFETIME_S, max_clock_skew=60)
        state.apply_all(events, now)
        sink = _sink(client, scope)
        sink.write("props", events, {0: len(events)}, now)
        sink.heartbeat("props", now)
        blocklist = _blocklist(client, scope, "props", clock=lambda: now)

        pairs = [(token, state.check(*token), blocklist.check(*token)) for token in tokens]

        assert [pair for pair in pairs if pair[1] != pair[2]] == []
        answers.update(in_state for _, in_state, _ in pairs)

    compare()

    # Every answer was met, so every rule was compared, not only "not revoked".
    assert set(answers) == {None, *EVENT_TYPES}
