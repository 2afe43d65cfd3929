"""A broker outage longer than the restart budget: the sidecar waits it out and recovers."""

from __future__ import annotations

import logging
import time

import pytest

from jwt_revocation.consumer import SidecarStatus, SidecarUnavailableError, TokenRevokedError
from jwt_revocation.producer import RevocationPublisher
from tests.integration.conftest import BrokerControl, SidecarFactory, issue, verifier_for
from tests.support import wait_for


def test_an_outage_longer_than_the_restart_budget_never_fails_the_sidecar(
    broker_control: BrokerControl,
    publisher: RevocationPublisher,
    make_sidecar: SidecarFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher.logout(jti="before-the-outage", user_id="u0", expires_at=time.time() + 900)
    broker_control.kill()
    # A budget of one restart, a short backoff and a short bootstrap: each consumer's start
    # fails within about a second, so the outage below outlasts the budget four times over.
    sidecar = make_sidecar(
        start=False,
        verify_topic=False,
        max_restarts=1,
        restart_backoff=0.05,
        consumer_config={"bootstrap_timeout_ms": 400},
    )
    with caplog.at_level(logging.ERROR, logger="jwt_revocation"):
        with pytest.raises(SidecarUnavailableError):
            sidecar.start(timeout=0)
        wait_for(lambda: sidecar.stats().restarts >= 4, timeout=60)
        status = sidecar.status
        detail = sidecar.stats().detail
        with pytest.raises(SidecarUnavailableError) as caught:
            verifier_for(sidecar).verify(issue("alice"))
    assert status is SidecarStatus.LOADING, detail
    assert "brokers unreachable since" in detail
    assert "retrying every" in detail
    assert caught.value.reason == "loading"
    unreachable = [r for r in caplog.records if "brokers unreachable" in r.getMessage()]
    assert len(unreachable) == 1, "logged at ERROR once a minute, not at every attempt"

    broker_control.start()
    wait_for(lambda: sidecar.status is SidecarStatus.CAUGHT_UP, timeout=90)
    assert "before-the-outage" in sidecar.state.snapshot().jtis
    token = issue("bob")
    assert verifier_for(sidecar).verify(token)["sub"] == "bob"
    published = publisher.password_changed(user_id="bob")
    wait_for(lambda: sidecar.applied_through(published.partition, published.offset), timeout=30)
    with pytest.raises(TokenRevokedError):
        verifier_for(sidecar).verify(token)
