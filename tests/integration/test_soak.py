"""Load with nothing lost: 100,000 revocations while two sidecars apply them and a thread verifies."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from jwt_revocation.consumer import RevocationVerifier, SidecarStatus, TokenRevokedError
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import TokenRevoked
from tests.integration.conftest import SidecarFactory, issue, verifier_for
from tests.support import wait_for

EVENTS = 100_000
RSS_BOUND_MB = 600


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.soak
def test_soak_every_revocation_reaches_both_sidecars(
    publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    sidecars = [make_sidecar(max_staleness=120) for _ in range(2)]
    verifiers = [verifier_for(s) for s in sidecars]
    accepted = issue("steady")
    stop = threading.Event()
    verified = [0]
    errors: list[BaseException] = []
    peak_rss = [_rss_mb()]

    def verify_continuously(verifier: RevocationVerifier) -> None:
        try:
            while not stop.is_set():
                verifier.verify(accepted)
                verified[0] += 1
                if verified[0] % 2000 == 0:
                    peak_rss[0] = max(peak_rss[0], _rss_mb())
                    time.sleep(0.001)  # leave the GIL to the sidecars now and then
        except BaseException as err:  # noqa: BLE001 - the test reports whatever kills this thread
            errors.append(err)

    checker = threading.Thread(target=verify_continuously, args=(verifiers[0],), name="soak-verify")
    checker.start()
    expires = datetime.fromtimestamp(time.time() + 1800, UTC)
    now = datetime.now(UTC)
    started = time.perf_counter()
    last = None
    for chunk in range(0, EVENTS, 5000):
        events = [
            TokenRevoked(
                issuer="soak",
                occurred_at=now,
                jti=f"soak-{i}",
                user_id=f"user-{i % 997}",
                expires_at=expires,
            )
            for i in range(chunk, chunk + 5000)
        ]
        last = publisher.publish_many(events)[-1]
    published_s = time.perf_counter() - started
    assert last is not None
    for sidecar in sidecars:
        wait_for(lambda s=sidecar: len(s.state) >= EVENTS, timeout=300)  # type: ignore[misc]
    applied_s = time.perf_counter() - started
    stop.set()
    checker.join(timeout=30)
    peak_rss[0] = max(peak_rss[0], _rss_mb())

    assert errors == []
    assert verified[0] > 0
    expected = {f"soak-{i}" for i in range(EVENTS)}
    for sidecar in sidecars:
        assert set(sidecar.state.snapshot().jtis) == expected  # counted, not sampled
        assert sidecar.stats().applied == {"token_revoked": EVENTS}
        assert sidecar.status is SidecarStatus.CAUGHT_UP
        assert sidecar.stats().restarts == 0  # the consumer thread never died
    with pytest.raises(TokenRevokedError):
        verifiers[1].check_claims({"jti": "soak-99999", "sub": "user-1", "exp": time.time() + 60})
    assert peak_rss[0] < RSS_BOUND_MB, f"peak RSS {peak_rss[0]:.0f} MB"
    print(
        f"\nsoak: {EVENTS} events published in {published_s:.1f} s "
        f"({EVENTS / published_s:.0f}/s), applied by both sidecars after {applied_s:.1f} s, "
        f"{verified[0]} verifications meanwhile, peak RSS {peak_rss[0]:.0f} MB"
    )
