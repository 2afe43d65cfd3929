"""Row 9: decoding a record that is a signed Security Event Token, against a JSON event.

The same mixed events are encoded three ways (a JSON event, an HS256 SET, an ES256 SET) and
decoded by what a sidecar uses for each; PyJWT's own decode of the HS256 SETs tells what
checking the signature costs by itself. Every decoded event is compared with the original.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from bench.fixtures import KEY, LIFETIME, Bench, mixed_events
from bench.harness import Report, Stats, flat, interleave, time_calls, us
from jwt_revocation.shared import (
    Event,
    SecurityEventSigner,
    SecurityEventVerifier,
    decode_event,
    encode_event,
)


@dataclass(frozen=True)
class Figures:
    """What the security-events group measured, in seconds per record."""

    stats: dict[str, Stats]
    """By encoding: ``JSON event``, ``SET, HS256``, ``SET, ES256``."""
    pyjwt: Stats
    """PyJWT's ``jwt.decode`` of the HS256 SETs."""
    signing: Stats
    """Signing one SET with ES256."""
    records: int
    """Records decoded and compared with their events, over every encoding."""
    differences: int


def measure(bench: Bench) -> Figures:
    """Encode ``calls`` mixed events each way, and time decoding them, interleaved."""
    events = list(mixed_events(bench.sizes.calls, time.time()))
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
    return Figures(
        stats=stats,
        pyjwt=pyjwt,
        signing=signing,
        records=len(events) * len(records),
        differences=differences,
    )


def report(figures: Figures) -> list[Report]:
    """Row 9."""
    stats = figures.stats
    base, es, hs = stats["JSON event"], stats["SET, ES256"], stats["SET, HS256"]
    notes = [
        f"{name}: median {us(stat.median)}, p99 {us(stat.p99)} per record, at most "
        f"{1 / stat.median:,.0f} records/s on one core ({stat.count:,} decodes)"
        for name, stat in stats.items()
    ]
    notes += [
        f"decoded events compared with the published ones: {figures.differences} differences "
        f"over {figures.records:,} records (logouts, user revocations, deletions)",
        f"of the HS256 SET's {us(hs.median)}, PyJWT's jwt.decode takes "
        f"{us(figures.pyjwt.median)}; the rest is reading the header and mapping the event",
        f"signing a SET with ES256 for the publisher: median {us(figures.signing.median)}",
    ]
    return [
        Report(
            result=f"ES256 median {us(es.median)}, HS256 {us(hs.median)} per record",
            compared=(
                f"a JSON event {us(base.median)}: ES256 {es.median / base.median:.0f}x, "
                f"HS256 {hs.median / base.median:.1f}x"
            ),
            target="the same events back (no speed target: the price of signatures)",
            met=figures.differences == 0,
            notes=notes,
        )
    ]
