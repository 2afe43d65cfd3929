"""Row 13: publish to enforced by 3 sidecars over SASL_SSL (SCRAM-SHA-512), against PLAINTEXT.

Both variants run on the same secured broker (``scripts/services.sh secured-start``), each with
a topic of its own: SASL_SSL on its SASL_SSL listener, as the users ``publisher`` and
``sidecar`` with exactly their ACLs; PLAINTEXT on its PLAINTEXT listener as ``User:ANONYMOUS``,
given the same rights for the run. Events alternate between the variants one by one, the order
rotating, so both see the same machine; everything is deleted, ACLs included, afterwards.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from bench.fixtures import LIFETIME, Bench, verifier
from bench.harness import Report, Stats, ms
from bench.secured import (
    PLAINTEXT,
    PUBLISHER,
    SASL_SSL,
    SIDECAR,
    admin,
    create_topic,
    delete_topics,
    ensure_running,
    grant,
    scram,
)
from jwt_revocation.consumer import RevocationSidecar
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import KafkaConnection, RevocationError

SIDECARS = 3


@dataclass(frozen=True)
class Figures:
    """Seconds from ``publish`` returning to all three sidecars rejecting, per variant."""

    sasl_ssl: Stats
    plaintext: Stats
    publish_sasl_ssl: Stats
    publish_plaintext: Stats


@dataclass
class _Variant:
    publisher: RevocationPublisher
    sidecars: list[RevocationSidecar]
    delays: list[float]
    publishes: list[float]

    def once(self, index: int) -> None:
        checks = [verifier(s, cache_size=0) for s in self.sidecars]
        jti = str(uuid.uuid4())
        sent = time.perf_counter()
        self.publisher.logout(jti=jti, user_id=f"user-{index}", expires_at=time.time() + 600)
        returned = time.perf_counter()
        waiting = checks
        while waiting:
            waiting = [c for c in waiting if c.is_revoked(jti=jti) is None]
            if waiting:
                time.sleep(0.00005)  # let the sidecar threads have the GIL
        self.delays.append(time.perf_counter() - returned)
        self.publishes.append(returned - sent)


def _variant(
    bootstrap: str, topic: str, publisher: KafkaConnection, sidecar: KafkaConnection
) -> _Variant:
    sidecars = [
        RevocationSidecar(
            bootstrap,
            topic,
            max_token_lifetime=LIFETIME,
            name=f"bench-secured-{i}",
            connection=sidecar,
        )
        for i in range(SIDECARS)
    ]
    for each in sidecars:
        each.start(timeout=60)
    made = RevocationPublisher(bootstrap, topic, issuer="bench", connection=publisher)
    made.logout(jti="warm-up", user_id="warm-up", expires_at=time.time() + 600)
    return _Variant(made, sidecars, [], [])


def measure(bench: Bench) -> Figures:
    """Publish logouts one by one, alternating the variants, and wait for all three sidecars."""
    missing = ensure_running("secured", [SASL_SSL, PLAINTEXT])
    if missing:
        raise RevocationError(f"the secured broker is not reachable at {missing}: make services")
    client = admin(SASL_SSL)
    topics = {name: f"bench-{name}-{bench.run}" for name in ("sasl", "plain")}
    variants: dict[str, _Variant] = {}
    try:
        for topic in topics.values():
            create_topic(client, topic, partitions=6)
        grant(client, topics["sasl"], {"publisher": PUBLISHER, "sidecar": SIDECAR})
        grant(client, topics["plain"], {"ANONYMOUS": (*PUBLISHER, "READ")})
        plain = KafkaConnection()
        variants["SASL_SSL"] = _variant(
            SASL_SSL, topics["sasl"], scram("publisher"), scram("sidecar")
        )
        variants["PLAINTEXT"] = _variant(PLAINTEXT, topics["plain"], plain, plain)
        names = list(variants)
        for i in range(bench.sizes.propagation_events):
            for name in names[i % 2 :] + names[: i % 2]:
                variants[name].once(i)
                time.sleep(0.002)
    finally:
        for variant in variants.values():
            variant.publisher.close()
            for sidecar in variant.sidecars:
                sidecar.stop()
        delete_topics(client, list(topics.values()))
        client.close()
    sasl, plain_variant = variants["SASL_SSL"], variants["PLAINTEXT"]
    return Figures(
        Stats.of(sasl.delays),
        Stats.of(plain_variant.delays),
        Stats.of(sasl.publishes),
        Stats.of(plain_variant.publishes),
    )


def report(figures: Figures) -> list[Report]:
    """Row 13."""
    s, p = figures.sasl_ssl, figures.plaintext
    return [
        Report(
            result=f"SASL_SSL p50 {ms(s.median)}, p99 {ms(s.p99)} over {s.count:,} events",
            compared=(
                f"PLAINTEXT on the same broker: p50 {ms(p.median)}, p99 {ms(p.p99)} "
                f"({s.median / p.median:.2f}x at p50)"
            ),
            target="p50 < 5 ms, p99 < 25 ms over SASL_SSL",
            met=s.median < 0.005 and s.p99 < 0.025,
            notes=[
                f"publish to enforced by all 3 sidecars over SASL_SSL (SCRAM-SHA-512, TLS 1.3): "
                f"p50 {ms(s.median)}, p99 {ms(s.p99)}; over PLAINTEXT: p50 {ms(p.median)}, "
                f"p99 {ms(p.p99)}",
                f"publish itself (until acks=all): SASL_SSL p50 "
                f"{ms(figures.publish_sasl_ssl.median)}, p99 {ms(figures.publish_sasl_ssl.p99)}; "
                f"PLAINTEXT p50 {ms(figures.publish_plaintext.median)}, p99 "
                f"{ms(figures.publish_plaintext.p99)}",
                "one secured broker (heap 256 MB), both listeners; the publisher and the 6 "
                "sidecars share one process; TLS and SASL cost only at connect time, then each "
                "record is encrypted",
            ],
        )
    ]
