"""The nine measurements, each against the real local broker and Redis.

Every row builds what it measures, compares it with the alternative in the same run and
fills in a :class:`Row`. Topics are created per run and deleted at the end; Redis keys live
under a per-run prefix and are deleted too.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import multiprocessing
import os
import statistics
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as EventType
from typing import Any

import jwt
import redis
from cryptography.hazmat.primitives.asymmetric import ec
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from jwt_revocation.consumer import (
    RedisSnapshots,
    RevocationSidecar,
    RevocationState,
    RevocationVerifier,
)
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import (
    SecurityEventSigner,
    SecurityEventVerifier,
    TokenRevoked,
    UserDeleted,
    UserTokensRevoked,
    decode_event,
    encode_event,
    ensure_topic,
)

from .harness import Row, Sizes, Stats, flat, interleave, ms, time_calls, timer_overhead, us

KEY = "benchmark-signing-key-" + "b" * 42
ISSUER = "https://auth.example.com"
AUDIENCE = "api"
LIFETIME = timedelta(hours=1)
Event = TokenRevoked | UserTokensRevoked | UserDeleted


@dataclass
class Bench:
    """What the rows share: sizes, the broker, Redis, and what to clean up afterwards."""

    sizes: Sizes
    bootstrap: str
    redis: redis.Redis
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    topics: list[str] = field(default_factory=list)

    def topic(self, label: str, partitions: int = 6) -> str:
        """A fresh topic for one row, deleted by :meth:`cleanup`."""
        name = f"bench-{label}-{self.run}"
        ensure_topic(self.bootstrap, name, max_token_lifetime=LIFETIME, partitions=partitions)
        self.topics.append(name)
        return name

    def sidecar(self, topic: str, name: str, **kwargs: Any) -> RevocationSidecar:
        """A started sidecar on ``topic``."""
        sidecar = RevocationSidecar(
            self.bootstrap, topic, max_token_lifetime=LIFETIME, name=name, **kwargs
        )
        sidecar.start(timeout=600)
        return sidecar

    def cleanup(self) -> None:
        """Delete this run's topics and Redis keys."""
        if self.topics:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
            try:
                admin.delete_topics(self.topics)
            finally:
                admin.close()
        prefix = f"bench:{self.run}:*"
        batch = list(self.redis.scan_iter(match=prefix, count=10_000))
        while batch:
            self.redis.unlink(*batch[:10_000])
            batch = batch[10_000:] or list(self.redis.scan_iter(match=prefix, count=10_000))


# -- tokens and events ----------------------------------------------------------------------


def token(jti: str, user: str, *, now: float, ttl: int = 600, key: str = KEY) -> str:
    """An HS256 token shaped like a typical access token."""
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user,
        "jti": jti,
        "iat": int(now) - 5,
        "exp": int(now) + ttl,
        "scope": "read write",
    }
    return jwt.encode(claims, key, algorithm="HS256")


def decode(tok: str) -> dict[str, Any]:
    """PyJWT alone, with the checks the verifier asks for."""
    return jwt.decode(
        tok,
        KEY,
        algorithms=["HS256"],
        issuer=ISSUER,
        audience=AUDIENCE,
        options={"require": ["exp"]},
    )


def verifier(source: RevocationSidecar, *, cache_size: int) -> RevocationVerifier:
    """The verifier under test."""
    return RevocationVerifier(
        source,
        key=KEY,
        algorithms=["HS256"],
        issuer=ISSUER,
        audience=AUDIENCE,
        cache_size=cache_size,
    )


def logout(jti: str, user: str, exp: float) -> TokenRevoked:
    """A logout event."""
    return TokenRevoked(
        issuer="bench",
        occurred_at=datetime.now(UTC),
        jti=jti,
        user_id=user,
        expires_at=datetime.fromtimestamp(exp, UTC),
    )


def mixed_events(count: int, now: float) -> Iterator[Event]:
    """Mostly logouts, with password changes (4 %) and deletions (1 %) of 100,000 users."""
    at = datetime.fromtimestamp(now, UTC)
    for i in range(count):
        user = f"user-{i % 100_000}"
        if i % 100 == 0:
            yield UserDeleted(issuer="bench", occurred_at=at, user_id=user, at=at)
        elif i % 25 == 0:
            yield UserTokensRevoked(issuer="bench", occurred_at=at, user_id=user, not_before=at)
        else:
            yield logout(str(uuid.uuid4()), user, now + 600 + i % 3000)


def fill(state: RevocationState, count: int, now: float) -> list[str]:
    """Revoke ``count`` fresh jtis in ``state``; return them."""
    jtis = [str(uuid.uuid4()) for _ in range(count)]
    with state.lock:
        for i, jti in enumerate(jtis):
            state.apply(logout(jti, f"user-{i % 100_000}", now + 600 + i % 3000), now)
    return jtis


@contextmanager
def redis_blocklist(bench: Bench, jtis: list[str], now: float) -> Iterator[tuple[str, float]]:
    """The same jtis as a classic Redis blocklist; yield its key prefix and bytes per key."""
    prefix = f"bench:{bench.run}:jti:"
    r = bench.redis
    before = int(r.info("memory")["used_memory"])
    for start in range(0, len(jtis), 10_000):
        pipe = r.pipeline(transaction=False)
        for jti in jtis[start : start + 10_000]:
            pipe.set(prefix + jti, 1, exat=int(now) + 600)
        pipe.execute()
    after = int(r.info("memory")["used_memory"])
    try:
        yield prefix, (after - before) / len(jtis)
    finally:
        keys = [prefix + jti for jti in jtis]
        for start in range(0, len(keys), 10_000):
            r.unlink(*keys[start : start + 10_000])


# -- rows 1 and 2: verify ------------------------------------------------------------------


SMALL_STATE = 10_000
"""Live entries for row 1's second figure: a state that fits the CPU caches."""


def verify_rows(bench: Bench) -> list[Row]:
    """Rows 1 to 3 share a sidecar holding ``entries`` live revocations, and Redis holding them."""
    sizes = bench.sizes
    now = time.time()
    sidecar = bench.sidecar(bench.topic("verify", partitions=1), "bench-verify")
    try:
        small = min(SMALL_STATE, sizes.entries)
        jtis = fill(sidecar.state, small, now)
        pool = [token(str(uuid.uuid4()), f"user-{i}", now=now) for i in range(1000)]
        inputs: list[object] = [pool[i % len(pool)] for i in range(sizes.calls)]
        fresh = verifier(sidecar, cache_size=0)
        small_samples = interleave(
            sizes.rounds,
            {
                "jwt.decode": lambda: time_calls(lambda t: decode(str(t)), inputs),
                "verify": lambda: time_calls(lambda t: fresh.verify(str(t)), inputs),
            },
        )
        jtis += fill(sidecar.state, sizes.entries - small, now)
        memory = memory_row(bench)
        with redis_blocklist(bench, jtis, now) as (prefix, redis_bytes):
            memory.compared += f"; Redis {redis_bytes:.0f} B per key (`used_memory`)"
            memory.note(
                f"Redis blocklist of the same {sizes.entries:,} jtis (`SET key 1 EXAT exp`): "
                f"{redis_bytes:.0f} B per key of `used_memory`"
            )
            first = verify_fresh_row(bench, sidecar, prefix, inputs)
        first.result += f"; {us(_added(small_samples, 'verify'))} at {small:,} entries"
        first.note(
            f"with {small:,} live entries (a table that fits the CPU caches) the check adds "
            f"{us(_added(small_samples, 'verify'))}"
        )
        second = verify_seen_row(bench, sidecar, now)
    finally:
        sidecar.stop()
    return [first, second, memory]


def _added(samples: dict[str, list[list[float]]], name: str, base: str = "jwt.decode") -> float:
    """What ``name`` adds to ``base``: the median over rounds of the difference of medians."""
    return statistics.median(
        statistics.median(v) - statistics.median(d)
        for v, d in zip(samples[name], samples[base], strict=True)
    )


def verify_fresh_row(
    bench: Bench, sidecar: RevocationSidecar, prefix: str, inputs: list[object]
) -> Row:
    """Row 1: verify against PyJWT alone and PyJWT plus a Redis EXISTS."""
    row = Row(1, "`verify` of an HS256 token, signature checked on every call")
    sizes = bench.sizes
    fresh = verifier(sidecar, cache_size=0)
    r = bench.redis
    jtis = sidecar.state.jtis

    def decode_and_exists(tok: object) -> object:
        return r.exists(prefix + decode(str(tok))["jti"])

    def decode_and_lookup(tok: object) -> object:
        return decode(str(tok))["jti"] in jtis

    samples = interleave(
        sizes.rounds,
        {
            "jwt.decode": lambda: time_calls(lambda t: decode(str(t)), inputs),
            "verify": lambda: time_calls(lambda t: fresh.verify(str(t)), inputs),
            "jwt.decode + Redis EXISTS": lambda: time_calls(decode_and_exists, inputs),
            "jwt.decode + jti lookup alone": lambda: time_calls(decode_and_lookup, inputs),
        },
    )
    stats = {name: Stats.of(flat(rounds)) for name, rounds in samples.items()}
    added = _added(samples, "verify")
    lookup = _added(samples, "jwt.decode + jti lookup alone")
    base, ours, remote = stats["jwt.decode"], stats["verify"], stats["jwt.decode + Redis EXISTS"]
    row.result = (
        f"median {us(ours.median)}, p99 {us(ours.p99)}; the check adds {us(added)} at "
        f"{sizes.entries:,} entries"
    )
    row.compared = (
        f"`jwt.decode` {us(base.median)} (p99 {us(base.p99)}); decode + Redis `EXISTS` "
        f"{us(remote.median)} (p99 {us(remote.p99)}), {remote.median / base.median:.1f}x decode"
    )
    row.target = "check adds ≤ 1 µs median"
    row.met = added <= 1e-6
    for name, s in stats.items():
        row.note(f"{name}: median {us(s.median)}, p99 {us(s.p99)} over {s.count:,} calls")
    row.note(
        f"added by the revocation check: {us(added)} (median over {sizes.rounds} rounds of "
        f"the per-round difference of medians), against {sizes.entries:,} live revoked jtis"
    )
    row.note(
        f"of that, the jti's dict lookup alone takes {us(lookup)}: at {sizes.entries:,} "
        "entries the table is tens of MB, so a lookup of a fresh jti misses the CPU caches; "
        f"the rest of the check (readiness gate, claim types, lifetime, user entries) takes "
        f"{us(added - lookup)}"
    )
    row.note(
        f"a Redis round trip costs {us(remote.median - base.median)} per request, "
        f"{(remote.median - base.median) / max(added, 1e-9):.0f}x the local check"
    )
    row.note(f"each timing includes one pair of clock reads ({us(timer_overhead())})")
    return row


def _outcome(check: Callable[[str], object], tok: str) -> object:
    try:
        return check(tok)
    except jwt.InvalidTokenError as err:
        return (type(err).__name__, str(err))


def verify_seen_row(bench: Bench, sidecar: RevocationSidecar, now: float) -> Row:
    """Row 2: verify of tokens seen before (the verified-token cache) against PyJWT alone."""
    row = Row(2, "`verify` of a token seen before")
    sizes = bench.sizes
    cached = verifier(sidecar, cache_size=4096)
    uncached = verifier(sidecar, cache_size=0)
    pool = [token(str(uuid.uuid4()), f"user-{i}", now=now) for i in range(1000)]
    for tok in pool:
        cached.verify(tok)
    inputs: list[object] = [pool[i % len(pool)] for i in range(sizes.calls)]
    samples = interleave(
        sizes.rounds,
        {
            "jwt.decode": lambda: time_calls(lambda t: decode(str(t)), inputs),
            "verify, seen before": lambda: time_calls(lambda t: cached.verify(str(t)), inputs),
        },
    )
    base = Stats.of(flat(samples["jwt.decode"]))
    ours = Stats.of(flat(samples["verify, seen before"]))
    ratio = base.median / ours.median

    # Same answers: accepted, revoked, expired, wrong key, cut off and deleted users.
    revoked = [str(uuid.uuid4()) for _ in range(200)]
    sidecar.state.apply_all([logout(jti, "user-r", now + 600) for jti in revoked], now)
    at = datetime.fromtimestamp(now, UTC)
    sidecar.state.apply_all(
        [
            UserTokensRevoked(issuer="bench", occurred_at=at, user_id="user-cut", not_before=at),
            UserDeleted(issuer="bench", occurred_at=at, user_id="user-gone", at=at),
        ],
        now,
    )
    mixed = (
        pool[:200]
        + [token(jti, "user-r", now=now) for jti in revoked]
        + [token(str(uuid.uuid4()), "user-x", now=now - 700) for _ in range(200)]
        + [token(str(uuid.uuid4()), "user-x", now=now, key="wrong-" + KEY) for _ in range(200)]
        + [token(str(uuid.uuid4()), u, now=now) for u in ["user-cut", "user-gone"] * 100]
    )
    mismatches = 0
    for tok in mixed:
        expected = _outcome(uncached.verify, tok)
        first, again = _outcome(cached.verify, tok), _outcome(cached.verify, tok)
        mismatches += (first != expected) + (again != expected)
    rejected = sum(isinstance(_outcome(uncached.verify, t), tuple) for t in mixed)

    row.result = f"median {us(ours.median)}, p99 {us(ours.p99)}"
    row.compared = f"`jwt.decode` {us(base.median)} (p99 {us(base.p99)}): {ratio:.0f}x faster"
    row.target = "≥ 10x faster than decode, same answers"
    row.met = ratio >= 10 and mismatches == 0
    row.note(f"jwt.decode: median {us(base.median)}, p99 {us(base.p99)} ({base.count:,} calls)")
    row.note(f"verify, seen before: median {us(ours.median)}, p99 {us(ours.p99)}")
    row.note(
        f"answers compared with an uncached verifier on {len(mixed):,} tokens, each verified "
        f"twice ({rejected:,} rejected: revoked, expired, wrong key, cut-off and deleted "
        f"users): {mismatches} differences"
    )
    row.note(
        "the cache keeps the claims of up to 4,096 tokens whose signature passed; every call "
        "still checks exp, nbf and iat against the clock and the revocation state"
    )
    return row


# -- row 3: memory --------------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _build(kind: str, count: int, traced: bool, out: Any) -> None:
    """In a fresh process: build ``count`` entries and report the bytes they took."""
    now = time.time()
    # One entry first, so one-time costs (pydantic's first validation, the first dict) stay
    # out of the per-entry figure.
    RevocationState(max_token_lifetime=3600, max_clock_skew=60).apply(
        logout(str(uuid.uuid4()), "u", now + 600), now
    )
    gc.collect()
    if traced:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if traced else _rss()
    kept: object
    if kind == "state":
        state = RevocationState(max_token_lifetime=3600, max_clock_skew=60)
        for i in range(count):
            state.apply(logout(str(uuid.uuid4()), "u", now + 600 + i % 3000), now)
        kept = state
    else:
        plain = {}
        for i in range(count):
            plain[str(uuid.uuid4())] = int(now) + 600 + i % 3000
        kept = plain
    gc.collect()
    if traced:
        out.put([(tracemalloc.get_traced_memory()[0] - before) / count])
    else:
        grown = _rss() - before
        # glibc keeps memory freed by the dict's earlier, smaller tables; hand it back to see
        # what the live entries hold.
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        out.put([grown / count, (_rss() - before) / count])
    del kept


def _measure_in_child(kind: str, count: int, traced: bool) -> list[float]:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    child = context.Process(target=_build, args=(kind, count, traced, out))
    child.start()
    values = [float(v) for v in out.get(timeout=600)]
    child.join()
    return values


def memory_row(bench: Bench) -> Row:
    """Row 3: bytes per live revoked jti, against a plain dict (Redis is added by the caller)."""
    row = Row(3, f"memory per live revoked jti at {bench.sizes.entries:,} entries")
    count = bench.sizes.entries
    traced = {kind: _measure_in_child(kind, count, True)[0] for kind in ("state", "dict")}
    rss = {kind: _measure_in_child(kind, count, False) for kind in ("state", "dict")}
    row.result = (
        f"{traced['state']:.0f} B (tracemalloc), {rss['state'][1]:.0f} B (RSS; "
        f"{rss['state'][0]:.0f} B before `malloc_trim`)"
    )
    row.compared = (
        f"plain `dict[str, int]`: {traced['dict']:.0f} B (tracemalloc), "
        f"{rss['dict'][1]:.0f} B (RSS)"
    )
    row.target = "≤ 120 B per entry"
    row.met = max(traced["state"], rss["state"][1]) <= 120
    row.note(
        f"RevocationState: {traced['state']:.1f} B per entry by tracemalloc, "
        f"{rss['state'][1]:.1f} B by RSS growth, both including the 36-character jti string"
    )
    row.note(
        f"RSS before `malloc_trim(0)`: {rss['state'][0]:.1f} B per entry. RSS counts allocator "
        "blocks and whole pages where tracemalloc counts the bytes asked for: the 85-byte "
        "string of a 36-character jti takes an 88-byte block, in pages shared with the freed "
        "parts of decoded events"
    )
    row.note(
        f"plain dict of jti -> exp: {traced['dict']:.1f} B (tracemalloc), {rss['dict'][1]:.1f} B "
        f"(RSS, {rss['dict'][0]:.1f} B before trimming); the state shares one int per expiry "
        "second"
    )
    row.note("each figure comes from a fresh process that builds the entries and nothing else")
    return row


# -- row 4: publish to enforced ------------------------------------------------------------


def propagation_row(bench: Bench) -> Row:
    """Row 4: time from ``publish`` returning to every one of three sidecars rejecting."""
    row = Row(4, "publish to enforced by 3 sidecars")
    topic = bench.topic("propagation")
    sidecars = [bench.sidecar(topic, f"bench-service-{i}") for i in range(3)]
    checks = [verifier(s, cache_size=0) for s in sidecars]
    delays: list[float] = []
    publish_times: list[float] = []
    try:
        with RevocationPublisher(bench.bootstrap, topic, issuer="bench") as publisher:
            publisher.logout(jti="warm-up", user_id="warm-up", expires_at=time.time() + 600)
            for i in range(bench.sizes.propagation_events):
                jti = str(uuid.uuid4())
                sent = time.perf_counter()
                publisher.logout(jti=jti, user_id=f"user-{i}", expires_at=time.time() + 600)
                returned = time.perf_counter()
                waiting = list(checks)
                while waiting:
                    waiting = [c for c in waiting if c.is_revoked(jti=jti) is None]
                    if waiting:
                        time.sleep(0.00005)  # let the sidecar threads have the GIL
                delays.append(time.perf_counter() - returned)
                publish_times.append(returned - sent)
                time.sleep(0.002)
    finally:
        for sidecar in sidecars:
            sidecar.stop()
    s, p = Stats.of(delays), Stats.of(publish_times)
    row.result = f"p50 {ms(s.median)}, p99 {ms(s.p99)} over {s.count:,} events"
    row.compared = "ktables p50 0.64 ms on loopback; Entra CAE up to 15 minutes"
    row.target = "p50 < 5 ms, p99 < 25 ms"
    row.met = s.median < 0.005 and s.p99 < 0.025
    row.note(
        f"publish to enforced by all 3: p50 {ms(s.median)}, p99 {ms(s.p99)}, max {ms(max(delays))}"
    )
    row.note(f"publish itself (until acks=all): p50 {ms(p.median)}, p99 {ms(p.p99)}")
    row.note("the 3 sidecars and the publisher share one process (one GIL), on 6 partitions")
    return row


# -- row 5: replay --------------------------------------------------------------------------


def _produce_raw(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=512 * 1024
    )
    start = time.perf_counter()
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    elapsed = time.perf_counter() - start
    producer.close()
    return elapsed


def _consume_raw(bootstrap: str, topic: str) -> tuple[float, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    total = sum(consumer.end_offsets(parts).values())
    start = time.perf_counter()
    seen = 0
    while seen < total:
        seen += sum(len(records) for records in consumer.poll(timeout_ms=500).values())
    elapsed = time.perf_counter() - start
    consumer.close()
    return elapsed, seen


def _decode_and_apply_cost(values: list[bytes], now: float) -> tuple[float, float]:
    """Microseconds per record to decode the values, and to merge the events into a state.

    Each event is dropped once used, as in the sidecar (keeping them all would time the
    garbage collector instead).
    """
    start = time.perf_counter()
    for value in values:
        decode_event(value)
    decoded = time.perf_counter() - start
    state = RevocationState(max_token_lifetime=LIFETIME.total_seconds(), max_clock_skew=60)
    start = time.perf_counter()
    for value in values:
        state.apply(decode_event(value), now)
    both = time.perf_counter() - start
    return decoded / len(values) * 1e6, (both - decoded) / len(values) * 1e6


def replay_rows(bench: Bench) -> list[Row]:
    """Row 5: cold start over a full topic, against raw consumption; row 8: from a snapshot."""
    count = bench.sizes.replay_events
    row = Row(5, f"cold start over a topic of {count:,} events")
    warm_row = Row(8, "warm start from a Redis snapshot, same topic")
    topic = bench.topic("replay")
    now = time.time()
    records = [(e.user_id.encode(), encode_event(e)) for e in mixed_events(count, now)]
    fill_seconds = _produce_raw(bench.bootstrap, topic, records)
    decode_us, apply_us = _decode_and_apply_cost([value for _, value in records[:100_000]], now)
    del records
    store = RedisSnapshots(bench.redis, prefix=f"bench:{bench.run}")
    writer = bench.sidecar(topic, "bench-snapshot", snapshots=store, snapshot_interval=0)
    saving = time.perf_counter()
    snapshot_id = writer.save_snapshot()
    save_seconds = time.perf_counter() - saving
    writer.stop()
    snapshot_bytes = len(
        bench.redis.hget(f"bench:{bench.run}:{topic}:snapshot:{snapshot_id}", "body") or b""
    )
    entries: list[int] = []
    warm_entries: list[int] = []

    def cold_start() -> list[float]:
        start = time.perf_counter()
        sidecar = bench.sidecar(topic, "bench-replay")
        elapsed = time.perf_counter() - start
        entries.append(len(sidecar.state))
        sidecar.stop()
        return [elapsed]

    def warm_start() -> list[float]:
        start = time.perf_counter()
        sidecar = bench.sidecar(topic, "bench-warm", snapshots=store, snapshot_interval=0)
        elapsed = time.perf_counter() - start
        assert sidecar.stats().started_from == f"snapshot {snapshot_id}"
        warm_entries.append(len(sidecar.state))
        sidecar.stop()
        return [elapsed]

    def raw() -> list[float]:
        elapsed, seen = _consume_raw(bench.bootstrap, topic)
        assert seen == count, f"raw consumer read {seen} of {count} records"
        return [elapsed]

    samples = interleave(
        max(2, bench.sizes.rounds - 2), {"sidecar": cold_start, "raw": raw, "warm": warm_start}
    )
    ours = statistics.median(flat(samples["sidecar"]))
    base = statistics.median(flat(samples["raw"]))
    warm = statistics.median(flat(samples["warm"]))
    rate = count / ours
    row.result = f"ready in {ours:.2f} s: {rate:,.0f} events/s"
    row.compared = f"raw kafka-python, no decoding: {count / base:,.0f} records/s ({ours / base:.1f}x the time)"
    row.target = "≥ 100,000 events/s, ready < 15 s"
    row.met = rate >= 100_000 and ours < 15
    row.note(
        f"sidecar start() to ready: median {ours:.2f} s over {len(flat(samples['sidecar']))} "
        f"cold starts ({[round(v, 2) for v in flat(samples['sidecar'])]}), "
        f"{entries[-1]:,} live entries"
    )
    row.note(
        f"raw KafkaConsumer reading every record without decoding: median {base:.2f} s "
        f"({[round(v, 2) for v in flat(samples['raw'])]})"
    )
    per_event = ours / count * 1e6
    row.note(
        f"where a cold start's {per_event:.1f} µs per event go: decoding and validating "
        f"{decode_us:.1f} µs, merging into the state {apply_us:.1f} µs (both timed alone on "
        f"the same records), the rest {per_event - decode_us - apply_us:.1f} µs in kafka-python "
        f"fetching and parsing records and in the loop; kafka-python alone takes "
        f"{base / count * 1e6:.1f} µs per record"
    )
    row.note(f"filling the topic with a raw producer took {fill_seconds:.1f} s")

    warm_row.result = f"ready in {warm:.2f} s with {warm_entries[-1]:,} live entries"
    warm_row.compared = f"full replay {ours:.2f} s ({ours / warm:.1f}x longer)"
    warm_row.target = "ready < 3 s, faster than full replay"
    warm_row.met = warm < 3 and warm < ours and warm_entries[-1] == entries[-1]
    warm_row.note(
        f"start() to ready from the snapshot: median {warm:.2f} s "
        f"({[round(v, 2) for v in flat(samples['warm'])]}); same live entries as a full "
        f"replay: {warm_entries[-1] == entries[-1]}"
    )
    warm_row.note(
        f"the snapshot: {snapshot_bytes / 1e6:.1f} MB compressed in Redis, written in "
        f"{save_seconds:.2f} s"
    )
    return [row, warm_row]


# -- row 6: publisher throughput -------------------------------------------------------------


def publish_row(bench: Bench) -> Row:
    """Row 6: acknowledged events per second from one publisher, against a raw producer."""
    count = bench.sizes.publish_events
    row = Row(6, "publisher throughput, acknowledged (`acks=all`)")
    topic = bench.topic("publish")
    now = time.time()
    events = list(mixed_events(count, now))
    raw_records = [(e.user_id.encode(), encode_event(e)) for e in events]
    publisher = RevocationPublisher(bench.bootstrap, topic, issuer="bench")
    raw_producer = KafkaProducer(
        bootstrap_servers=bench.bootstrap, acks="all", enable_idempotence=True, linger_ms=0
    )

    def ours() -> list[float]:
        start = time.perf_counter()
        published = publisher.publish_many(events)
        assert len(published) == count
        return [time.perf_counter() - start]

    def raw() -> list[float]:
        start = time.perf_counter()
        futures = [raw_producer.send(topic, key=k, value=v) for k, v in raw_records]
        for future in futures:
            future.get(timeout=60)
        return [time.perf_counter() - start]

    try:
        samples = interleave(bench.sizes.rounds, {"publish_many": ours, "raw": raw})
    finally:
        publisher.close()
        raw_producer.close()
    mine = count / statistics.median(flat(samples["publish_many"]))
    theirs = count / statistics.median(flat(samples["raw"]))
    row.result = f"{mine:,.0f} events/s"
    row.compared = (
        f"raw `KafkaProducer` with the same bytes: {theirs:,.0f} events/s ({mine / theirs:.2f}x)"
    )
    row.target = "≥ 20,000 events/s"
    row.met = mine >= 20_000
    row.note(
        f"publish_many of {count:,} events, each acknowledged: median {mine:,.0f} events/s "
        f"({[round(count / v) for v in flat(samples['publish_many'])]})"
    )
    row.note(
        f"raw KafkaProducer (acks=all, idempotent) sending the encoded events: "
        f"{theirs:,.0f} events/s ({[round(count / v) for v in flat(samples['raw'])]})"
    )
    return row


# -- row 7: verify under revocation traffic --------------------------------------------------


def _traffic(bootstrap: str, topic: str, rate: int, active: EventType, done: EventType) -> None:
    """In another process: publish ``rate`` logouts per second while ``active`` is set."""
    with RevocationPublisher(bootstrap, topic, issuer="bench-traffic") as publisher:
        per_tick = max(1, rate // 100)
        next_tick = time.monotonic()
        while not done.is_set():
            if not active.wait(0.05):
                next_tick = time.monotonic()
                continue
            exp = time.time() + 600
            publisher.publish_many(
                [logout(str(uuid.uuid4()), f"user-{i}", exp) for i in range(per_tick)]
            )
            next_tick += 0.01
            time.sleep(max(0.0, next_tick - time.monotonic()))


def _thread_cpu(name: str) -> float:
    """CPU seconds used so far by this process's thread called ``name`` (Linux)."""
    for thread in threading.enumerate():
        if thread.name == name and thread.native_id is not None:
            path = f"/proc/self/task/{thread.native_id}/stat"
            with open(path, encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def load_row(bench: Bench) -> Row:
    """Row 7: verify latency with two threads, quiet and while 1,000 revocations/s apply.

    A third variant sends the same traffic to a topic this process does not read: the broker
    and the publishing process work as hard, but the sidecar has nothing to apply. It tells the
    cost of sharing two cores with them apart from the cost of applying the events.
    """
    row = Row(7, "verify with 2 threads while 1,000 revocations/s are applied")
    sizes = bench.sizes
    topic, elsewhere = bench.topic("load"), bench.topic("load-elsewhere")
    sidecar = bench.sidecar(topic, "bench-load")
    check = verifier(sidecar, cache_size=0)
    now = time.time()
    pool = [token(str(uuid.uuid4()), f"user-{i}", now=now) for i in range(1000)]
    context = multiprocessing.get_context("spawn")
    done = context.Event()
    switches = {"loaded": context.Event(), "elsewhere": context.Event()}
    generators = [
        context.Process(target=_traffic, args=(bench.bootstrap, t, 1000, switches[k], done))
        for k, t in (("loaded", topic), ("elsewhere", elsewhere))
    ]
    for generator in generators:
        generator.start()
    applied_rates: list[float] = []
    sidecar_cpu: dict[str, list[float]] = {"quiet": [], "loaded": [], "elsewhere": []}

    def run(kind: str) -> list[float]:
        switch = switches.get(kind)
        if switch is not None:
            switch.set()
            time.sleep(0.5)
        applied_before = sum(sidecar.stats().applied.values())
        cpu_before = _thread_cpu(sidecar.name)
        latencies: list[list[float]] = [[], []]
        deadline = time.perf_counter() + sizes.load_seconds

        def work(out: list[float], offset: int) -> None:
            clock = time.perf_counter_ns
            i = offset
            while time.perf_counter() < deadline:
                tok = pool[i % 1000]
                start = clock()
                check.verify(tok)
                out.append((clock() - start) / 1e9)
                i += 1

        threads = [threading.Thread(target=work, args=(latencies[n], n * 500)) for n in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sidecar_cpu[kind].append((_thread_cpu(sidecar.name) - cpu_before) / sizes.load_seconds)
        if kind == "loaded":
            applied = sum(sidecar.stats().applied.values()) - applied_before
            applied_rates.append(applied / sizes.load_seconds)
        if switch is not None:
            switch.clear()
            time.sleep(0.3)
        return latencies[0] + latencies[1]

    try:
        samples = interleave(
            sizes.rounds, {kind: functools.partial(run, kind) for kind in sidecar_cpu}
        )
    finally:
        done.set()
        for generator in generators:
            generator.join(30)
        sidecar.stop()
    stats = {kind: Stats.of(flat(rounds)) for kind, rounds in samples.items()}
    quiet, loaded, other = stats["quiet"], stats["loaded"], stats["elsewhere"]
    seconds = sizes.load_seconds * sizes.rounds
    ratio = loaded.p99 / quiet.p99
    row.result = (
        f"p50 {us(loaded.median)}, p99 {us(loaded.p99)}; {loaded.count / seconds:,.0f} verifies/s"
    )
    row.compared = (
        f"quiet: p50 {us(quiet.median)}, p99 {us(quiet.p99)}, "
        f"{quiet.count / seconds:,.0f} verifies/s; p99 ratio {ratio:.2f}x. Same traffic to "
        f"a topic not read here: p99 {us(other.p99)} ({other.p99 / quiet.p99:.2f}x)"
    )
    row.target = "p99 within 2x of quiet"
    row.met = ratio <= 2 and min(applied_rates) >= 900
    row.note(
        f"revocations applied while loaded: {[round(r) for r in applied_rates]} per second "
        "(published by a second process)"
    )
    for kind, s in stats.items():
        cpu = statistics.median(sidecar_cpu[kind])
        row.note(
            f"{kind}: {s.count:,} verifies ({s.count / seconds:,.0f}/s), p50 {us(s.median)}, "
            f"p99 {us(s.p99)}; the sidecar thread used {cpu:.1%} of a core"
        )
    row.note(
        f"p99 while the sidecar applies the traffic is {loaded.p99 / other.p99:.2f}x the p99 "
        "while the same traffic goes elsewhere: what is left is the machine, not the sidecar"
    )
    row.note(
        "signature checked on every call (cache off); the two threads share the GIL, and the "
        "broker and the publishing process share the machine's cores"
    )
    return row


# -- row 9: signed events ----------------------------------------------------------------


def security_events_row(bench: Bench) -> Row:
    """Row 9: decoding a record that is a signed SET, against one that is a JSON event."""
    row = Row(9, "decode a Security Event Token record (ES256, HS256)")
    now = time.time()
    events = list(mixed_events(bench.sizes.calls, now))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    secret = KEY
    ec_signer = SecurityEventSigner(ec_key, algorithm="ES256")
    hs_signer = SecurityEventSigner(secret, algorithm="HS256")
    ec_verifier = SecurityEventVerifier(ec_key.public_key(), issuer="bench", algorithms=["ES256"])
    hs_verifier = SecurityEventVerifier(secret, issuer="bench", algorithms=["HS256"])
    lifetime = LIFETIME.total_seconds()
    records = {
        "JSON event": [encode_event(e) for e in events],
        "SET, HS256": [hs_signer.encode(e).encode() for e in events],
        "SET, ES256": [ec_signer.encode(e).encode() for e in events],
    }
    decoders: dict[str, Callable[[bytes], Event]] = {
        "JSON event": decode_event,
        "SET, HS256": functools.partial(hs_verifier.decode, max_token_lifetime=lifetime),
        "SET, ES256": functools.partial(ec_verifier.decode, max_token_lifetime=lifetime),
    }
    variants: dict[str, Callable[[], list[float]]] = {
        name: functools.partial(time_calls, decoders[name], records[name]) for name in records
    }
    # PyJWT's own decode of the same HS256 SETs: what signature checking costs by itself.
    variants["jwt.decode of the HS256 SET"] = functools.partial(
        time_calls,
        lambda v: jwt.decode(v, secret, algorithms=["HS256"], options={"verify_aud": False}),
        records["SET, HS256"],
    )
    samples = interleave(bench.sizes.rounds, variants)
    stats = {name: Stats.of(flat(rounds)) for name, rounds in samples.items()}
    differences = sum(
        decoders[name](value) != event
        for name in records
        for value, event in zip(records[name], events, strict=True)
    )
    signing = Stats.of(time_calls(ec_signer.encode, events[:2000]))
    pyjwt = stats.pop("jwt.decode of the HS256 SET")
    base, es, hs = stats["JSON event"], stats["SET, ES256"], stats["SET, HS256"]
    row.result = f"ES256 median {us(es.median)}, HS256 {us(hs.median)} per record"
    row.compared = (
        f"a JSON event {us(base.median)}: ES256 {es.median / base.median:.0f}x, "
        f"HS256 {hs.median / base.median:.1f}x"
    )
    row.target = "the same events back (no speed target: the price of signatures)"
    row.met = differences == 0
    for name, stat in stats.items():
        row.note(
            f"{name}: median {us(stat.median)}, p99 {us(stat.p99)} per record, at most "
            f"{1 / stat.median:,.0f} records/s on one core ({stat.count:,} decodes)"
        )
    row.note(
        f"decoded events compared with the published ones: {differences} differences over "
        f"{len(events) * len(records):,} records (logouts, user revocations, deletions)"
    )
    row.note(
        f"of the HS256 SET's {us(hs.median)}, PyJWT's jwt.decode takes {us(pyjwt.median)}; "
        "the rest is reading the header and mapping the event"
    )
    row.note(f"signing a SET with ES256 for the publisher: median {us(signing.median)}")
    return row


ROWS: dict[str, Callable[[Bench], list[Row]]] = {
    "verify": verify_rows,
    "propagation": lambda b: [propagation_row(b)],
    "replay": replay_rows,
    "publish": lambda b: [publish_row(b)],
    "load": lambda b: [load_row(b)],
    "security-events": lambda b: [security_events_row(b)],
}
"""Groups of rows, in the order they run."""
