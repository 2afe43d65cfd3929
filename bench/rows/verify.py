"""Rows 1 and 2: what ``verify`` costs, with the signature checked on every call and for a token
seen before, against PyJWT alone and PyJWT plus a Redis blocklist lookup.

Both rows measure one sidecar holding ``entries`` live revocations (and, for row 1, Redis
holding the same jtis as a blocklist). Row 1 is measured first: row 2 adds revocations of its
own to compare the answers of a cached and an uncached verifier.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from bench.fixtures import (
    KEY,
    Bench,
    decode,
    fill,
    logout,
    redis_blocklist,
    token,
    token_pool,
    verifier,
)
from bench.harness import Report, Stats, flat, interleave, time_calls, timer_overhead, us
from jwt_revocation.consumer import RevocationSidecar
from jwt_revocation.shared import UserDeleted, UserTokensRevoked

SMALL_STATE = 10_000
"""Live entries for row 1's second figure: a state that fits the CPU caches."""

Samples = dict[str, list[list[float]]]
"""Seconds per call, by variant and by round."""


@dataclass(frozen=True)
class Fresh:
    """Row 1's figures: every call checks the signature."""

    entries: int
    rounds: int
    stats: dict[str, Stats]
    """By variant: ``jwt.decode``, ``verify``, decode + Redis ``EXISTS``, decode + lookup."""
    added: float
    """What the revocation check adds to ``jwt.decode``, in seconds."""
    lookup: float
    """What the jti's dict lookup alone adds to ``jwt.decode``."""
    small_entries: int
    small_added: float
    """What the check adds at ``small_entries`` live entries."""
    timer: float
    """One pair of clock reads, included in every timing."""


@dataclass(frozen=True)
class Seen:
    """Row 2's figures: tokens whose signature the verifier has checked before."""

    base: Stats
    """``jwt.decode``."""
    ours: Stats
    """``verify`` of a token seen before."""
    tokens: int
    """Tokens whose answers were compared with an uncached verifier."""
    rejected: int
    mismatches: int


@dataclass(frozen=True)
class Figures:
    """What the verify group measured."""

    fresh: Fresh
    seen: Seen


def measure(bench: Bench) -> Figures:
    """Fill a sidecar to ``entries`` live revocations and time ``verify`` at two sizes."""
    sizes = bench.sizes
    now = time.time()
    sidecar = bench.sidecar(bench.topic("verify", partitions=1), "bench-verify")
    try:
        small = min(SMALL_STATE, sizes.entries)
        jtis = fill(sidecar.state, small, now)
        pool = token_pool(now)
        inputs: list[object] = [pool[i % len(pool)] for i in range(sizes.calls)]
        check = verifier(sidecar, cache_size=0)
        small_samples = interleave(sizes.rounds, _against_decode("verify", check.verify, inputs))
        jtis += fill(sidecar.state, sizes.entries - small, now)
        with redis_blocklist(bench, jtis, now) as (prefix, _):
            samples = _fresh_samples(bench, sidecar, prefix, inputs)
        fresh = Fresh(
            entries=sizes.entries,
            rounds=sizes.rounds,
            stats={name: Stats.of(flat(rounds)) for name, rounds in samples.items()},
            added=_added(samples, "verify"),
            lookup=_added(samples, "jwt.decode + jti lookup alone"),
            small_entries=small,
            small_added=_added(small_samples, "verify"),
            timer=timer_overhead(),
        )
        seen = _seen(bench, sidecar, now)
    finally:
        sidecar.stop()
    return Figures(fresh, seen)


def _against_decode(
    name: str, check: Callable[[str], object], inputs: list[object]
) -> dict[str, Callable[[], list[float]]]:
    """Timings of ``jwt.decode`` and of ``check`` (called ``name``) on the same tokens."""
    return {
        "jwt.decode": lambda: time_calls(lambda t: decode(str(t)), inputs),
        name: lambda: time_calls(lambda t: check(str(t)), inputs),
    }


def _added(samples: Samples, name: str, base: str = "jwt.decode") -> float:
    """What ``name`` adds to ``base``: the median over rounds of the difference of medians."""
    return statistics.median(
        statistics.median(v) - statistics.median(d)
        for v, d in zip(samples[name], samples[base], strict=True)
    )


def _fresh_samples(
    bench: Bench, sidecar: RevocationSidecar, prefix: str, inputs: list[object]
) -> Samples:
    """Row 1: verify against PyJWT alone and PyJWT plus a Redis EXISTS."""
    fresh = verifier(sidecar, cache_size=0)
    r = bench.redis
    jtis = sidecar.state.jtis

    def decode_and_exists(tok: object) -> object:
        return r.exists(prefix + decode(str(tok))["jti"])

    def decode_and_lookup(tok: object) -> object:
        return decode(str(tok))["jti"] in jtis

    return interleave(
        bench.sizes.rounds,
        {
            **_against_decode("verify", fresh.verify, inputs),
            "jwt.decode + Redis EXISTS": lambda: time_calls(decode_and_exists, inputs),
            "jwt.decode + jti lookup alone": lambda: time_calls(decode_and_lookup, inputs),
        },
    )


def _outcome(check: Callable[[str], object], tok: str) -> object:
    try:
        return check(tok)
    except jwt.InvalidTokenError as err:
        return (type(err).__name__, str(err))


def _seen(bench: Bench, sidecar: RevocationSidecar, now: float) -> Seen:
    """Row 2: verify of tokens seen before (the verified-token cache) against PyJWT alone."""
    sizes = bench.sizes
    cached = verifier(sidecar, cache_size=4096)
    uncached = verifier(sidecar, cache_size=0)
    pool = token_pool(now)
    for tok in pool:
        cached.verify(tok)
    inputs: list[object] = [pool[i % len(pool)] for i in range(sizes.calls)]
    samples = interleave(
        sizes.rounds, _against_decode("verify, seen before", cached.verify, inputs)
    )
    mixed = pool[:200] + _rejected_tokens(sidecar, now)
    mismatches = 0
    for tok in mixed:
        expected = _outcome(uncached.verify, tok)
        first, again = _outcome(cached.verify, tok), _outcome(cached.verify, tok)
        mismatches += (first != expected) + (again != expected)
    return Seen(
        base=Stats.of(flat(samples["jwt.decode"])),
        ours=Stats.of(flat(samples["verify, seen before"])),
        tokens=len(mixed),
        rejected=sum(isinstance(_outcome(uncached.verify, t), tuple) for t in mixed),
        mismatches=mismatches,
    )


def _rejected_tokens(sidecar: RevocationSidecar, now: float) -> list[str]:
    """800 tokens to reject: revoked, expired, wrong key, cut-off and deleted users."""
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
    return (
        [token(jti, "user-r", now=now) for jti in revoked]
        + [token(str(uuid.uuid4()), "user-x", now=now - 700) for _ in range(200)]
        + [token(str(uuid.uuid4()), "user-x", now=now, key="wrong-" + KEY) for _ in range(200)]
        + [token(str(uuid.uuid4()), u, now=now) for u in ["user-cut", "user-gone"] * 100]
    )


def report(figures: Figures) -> list[Report]:
    """Rows 1 and 2."""
    return [_fresh_report(figures.fresh), _seen_report(figures.seen)]


def _fresh_report(f: Fresh) -> Report:
    stats, added, lookup = f.stats, f.added, f.lookup
    base, ours, remote = stats["jwt.decode"], stats["verify"], stats["jwt.decode + Redis EXISTS"]
    notes = [
        f"{name}: median {us(s.median)}, p99 {us(s.p99)} over {s.count:,} calls"
        for name, s in stats.items()
    ]
    notes += [
        f"added by the revocation check: {us(added)} (median over {f.rounds} rounds of "
        f"the per-round difference of medians), against {f.entries:,} live revoked jtis",
        f"of that, the jti's dict lookup alone takes {us(lookup)}: at {f.entries:,} "
        "entries the table is tens of MB, so a lookup of a fresh jti misses the CPU caches; "
        f"the rest of the check (readiness gate, claim types, lifetime, user, session and "
        f"everyone's entries) takes "
        f"{us(added - lookup)}",
        f"a Redis round trip costs {us(remote.median - base.median)} per request, "
        f"{(remote.median - base.median) / max(added, 1e-9):.0f}x the local check",
        f"each timing includes one pair of clock reads ({us(f.timer)})",
        f"with {f.small_entries:,} live entries (a table that fits the CPU caches) the check adds "
        f"{us(f.small_added)}",
    ]
    return Report(
        result=(
            f"median {us(ours.median)}, p99 {us(ours.p99)}; the check adds {us(added)} at "
            f"{f.entries:,} entries; {us(f.small_added)} at {f.small_entries:,} entries"
        ),
        compared=(
            f"`jwt.decode` {us(base.median)} (p99 {us(base.p99)}); decode + Redis `EXISTS` "
            f"{us(remote.median)} (p99 {us(remote.p99)}), {remote.median / base.median:.1f}x decode"
        ),
        target="check adds ≤ 1 µs median",
        met=added <= 1e-6,
        notes=notes,
    )


def _seen_report(f: Seen) -> Report:
    base, ours = f.base, f.ours
    ratio = base.median / ours.median
    return Report(
        result=f"median {us(ours.median)}, p99 {us(ours.p99)}",
        compared=f"`jwt.decode` {us(base.median)} (p99 {us(base.p99)}): {ratio:.0f}x faster",
        target="≥ 10x faster than decode, same answers",
        met=ratio >= 10 and f.mismatches == 0,
        notes=[
            f"jwt.decode: median {us(base.median)}, p99 {us(base.p99)} ({base.count:,} calls)",
            f"verify, seen before: median {us(ours.median)}, p99 {us(ours.p99)}",
            f"answers compared with an uncached verifier on {f.tokens:,} tokens, each verified "
            f"twice ({f.rejected:,} rejected: revoked, expired, wrong key, cut-off and deleted "
            f"users): {f.mismatches} differences",
            "the cache keeps the claims of up to 4,096 tokens whose signature passed; every call "
            "still checks exp, nbf and iat against the clock and the revocation state",
        ],
    )
