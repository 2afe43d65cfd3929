"""The outbox and the async publisher while the shared broker is down or frozen.

Like tests/integration/test_faults.py, these stop the suite's one broker through the
``broker_control`` fixture, which holds the broker's lock exclusive and always leaves it running.
"""

from __future__ import annotations

import asyncio
import time

import httpx2
import pytest
from fastapi import FastAPI

from jwt_revocation.producer import AsyncRevocationPublisher
from jwt_revocation.producer.outbox import RevocationOutbox
from jwt_revocation.shared import PublishError
from jwt_revocation.shared._events import record_key
from tests.integration.conftest import BOOTSTRAP, BrokerControl, SidecarFactory
from tests.integration.outbox.conftest import RelayFactory, pending, read_topic
from tests.support import wait_for


def test_1000_password_changes_committed_while_the_broker_is_down_are_all_enforced(
    broker_control: BrokerControl,
    outbox: RevocationOutbox,
    topic: str,
    start_relay: RelayFactory,
    make_sidecar: SidecarFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sidecars = [make_sidecar(max_staleness=300) for _ in range(2)]
    relay = start_relay(outbox.engine, timeout=2, max_backoff=1)
    users = [f"changed-{i}" for i in range(1_000)]

    broker_control.kill()
    for user in users:  # one transaction per password change, as an auth service would
        with outbox.engine.begin() as connection:
            outbox.password_changed(connection, user_id=user)
    wait_for(lambda: relay.status()["publish_failures"] >= 1, timeout=30)
    assert pending(outbox.engine) == 1_000
    broker_control.start()
    back = time.monotonic()

    for sidecar in sidecars:
        wait_for(lambda s=sidecar: set(users) <= s.state.snapshot().cutoffs.keys(), timeout=90)  # type: ignore[misc]
    drained = time.monotonic() - back
    wait_for(lambda: pending(outbox.engine) == 0)
    contents = read_topic(topic)
    assert {record_key(event) for event in contents.events} == set(users), "0 lost"
    status = relay.status()
    with capsys.disabled():
        print(
            f"\n[outbox] 1,000 password changes committed with the broker down: enforced by "
            f"both sidecars {drained:.1f} s after it was back "
            f"({status['publish_failures']} refused batches, {contents.duplicates} duplicates)"
        )


def test_other_requests_are_served_while_an_async_publish_waits_on_a_frozen_broker(
    broker_control: BrokerControl, topic: str
) -> None:
    async def scenario() -> tuple[list[float], BaseException | str]:
        publisher = AsyncRevocationPublisher(BOOTSTRAP, topic, issuer="auth", timeout=3)
        app = FastAPI()

        @app.post("/logout/{user_id}")
        async def logout(user_id: str) -> dict[str, str]:
            published = await publisher.logout_everywhere(user_id=user_id)
            return {"event_id": published.event.event_id}

        @app.get("/ping")
        async def ping() -> dict[str, str]:
            return {"pong": "yes"}

        transport = httpx2.ASGITransport(app=app)
        async with (
            publisher,
            httpx2.AsyncClient(transport=transport, base_url="http://auth") as client,
        ):
            assert (await client.post("/logout/warm-up")).status_code == 200
            broker_control.pause()
            waiting = asyncio.create_task(client.post("/logout/alice"))
            latencies = []
            while not waiting.done():
                started = time.perf_counter()
                assert (await client.get("/ping")).json() == {"pong": "yes"}
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)
            try:
                outcome: BaseException | str = str((await waiting).status_code)
            except PublishError as err:
                outcome = err
            broker_control.resume()
            return latencies, outcome

    latencies, outcome = asyncio.run(scenario())

    assert isinstance(outcome, PublishError), "the publish waited for its whole timeout"
    assert outcome.retriable
    assert "was not acknowledged" in str(outcome)
    assert len(latencies) >= 20, "requests kept being served during the 3 s wait"
    assert max(latencies) < 0.25
