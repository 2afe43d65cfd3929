"""The async publisher's bridge from kafka-python's future to asyncio, with no broker.

kafka-python settles its futures on its sender thread; the bridge must settle the asyncio
future on the loop's thread, once, and ignore a settlement that comes after a timeout.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.future import Future

from jwt_revocation.producer._async_publisher import _bridge


def settle_from_another_thread(action: object) -> None:
    thread = threading.Thread(target=action)  # type: ignore[arg-type]
    thread.start()
    thread.join()


def test_a_success_on_the_sender_thread_resolves_the_awaited_future() -> None:
    async def scenario() -> tuple[object, bool]:
        loop = asyncio.get_running_loop()
        future = Future()
        bridged = _bridge(loop, future)
        on_loop_thread: list[bool] = []
        bridged.add_done_callback(lambda _: on_loop_thread.append(True))
        settle_from_another_thread(lambda: future.success("metadata"))
        return await bridged, bool(on_loop_thread)

    assert asyncio.run(scenario()) == ("metadata", True)


def test_a_failure_raises_the_kafka_error_to_the_awaiting_task() -> None:
    async def scenario() -> None:
        future = Future()
        bridged = _bridge(asyncio.get_running_loop(), future)
        settle_from_another_thread(lambda: future.failure(KafkaTimeoutError("slow")))
        await bridged

    with pytest.raises(KafkaTimeoutError):
        asyncio.run(scenario())


def test_a_future_already_settled_is_bridged_at_once() -> None:
    async def scenario() -> object:
        future = Future().success(7)
        return await _bridge(asyncio.get_running_loop(), future)

    assert asyncio.run(scenario()) == 7


def test_a_settlement_after_a_timeout_or_after_the_loop_closed_is_ignored() -> None:
    future, late = Future(), Future()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        bridged = _bridge(loop, future)
        _bridge(loop, late)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bridged, 0.01)  # cancels the bridged future
        settle_from_another_thread(lambda: future.success("too late"))
        await asyncio.sleep(0)  # the loop runs the settlement: nothing to set any more

    asyncio.run(scenario())
    late.success("the loop is closed")  # nothing raised on the sender thread
