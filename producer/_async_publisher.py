"""An awaitable publisher: the same events, guarantees and errors, and no blocked event loop.

Every method of :class:`AsyncRevocationPublisher` returns an awaitable that resolves once the
broker acknowledged the event (``acks=all``, idempotent producer) or raises
:class:`~jwt_revocation.shared.PublishError`, exactly like the blocking publisher. While it
waits, the event loop serves everything else:

1. ``KafkaProducer.send()`` only appends to kafka-python's accumulator once the topic's
   partitions are known; the one call that could block (the first metadata fetch) runs in the
   loop's executor, once.
2. The acknowledgement arrives on kafka-python's sender thread, which settles an asyncio future
   through ``loop.call_soon_threadsafe``: no thread is parked per call, so a thousand publishes
   waiting on a slow broker cost a thousand futures, not a thousand threads.
3. ``close()`` and ``flush()`` block on the producer, so they run in the executor.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterable
from functools import partial
from types import TracebackType
from typing import Any, Self

from kafka.errors import KafkaError, KafkaTimeoutError

from jwt_revocation.shared import Event, PublishError

from ._publisher import Published, _PublisherBase
from ._revocations import RevocationMethods


class AsyncRevocationPublisher(_PublisherBase, RevocationMethods[Awaitable[Published]]):
    """Publishes revocation events from async code: ``await publisher.logout(...)``.

    Takes the arguments of :class:`~jwt_revocation.producer.RevocationPublisher`; every method
    is awaited and returns :class:`~jwt_revocation.producer.Published` after the broker's
    acknowledgement, or raises :class:`PublishError`. Safe to share between the tasks of one
    event loop; use it as ``async with``.
    """

    _metadata_ready = False

    async def _emit(self, event: Event) -> Published:
        return await self.publish(event)

    async def publish(self, event: Event) -> Published:
        """Send one event and wait, without blocking the loop, for the broker's acknowledgement."""
        return (await self.publish_many([event]))[0]

    async def publish_many(self, events: Iterable[Event]) -> list[Published]:
        """Send events together and wait until the broker acknowledged every one of them.

        Raises :class:`PublishError` if any was not acknowledged; those before it in the list
        that were acknowledged stay published.
        """
        events = list(events)
        if not events:
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        await self._partitions_known(loop, events[0])
        waiting = [(event, _bridge(loop, future)) for event, future in self._send(events)]
        published = []
        try:
            for event, acknowledged in waiting:
                try:
                    meta = await asyncio.wait_for(acknowledged, max(0.0, deadline - loop.time()))
                except TimeoutError:
                    error = KafkaTimeoutError("no acknowledgement in time")
                    raise self._error(event, error) from None
                except KafkaError as err:
                    raise self._error(event, err) from err
                published.append(self._published(event, meta))
        finally:
            for _, acknowledged in waiting:
                acknowledged.cancel()  # nobody awaits the rest once one failed
        return published

    async def _partitions_known(self, loop: asyncio.AbstractEventLoop, event: Event) -> None:
        """Fetch the topic's partitions off the loop, once: the only blocking step of send()."""
        if self._metadata_ready or self._closed:
            return
        try:
            await loop.run_in_executor(None, self._producer.partitions_for, self.topic)
        except KafkaError as err:
            # Off the loop too: telling a deleted topic asks the brokers.
            error = await loop.run_in_executor(
                None, partial(self._error, event, err, handed_over=False)
            )
            raise error from err
        self._metadata_ready = True

    # -- lifecycle -------------------------------------------------------------------------

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every event sent so far was acknowledged or failed."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                None, self._producer.flush, self.timeout if timeout is None else timeout
            )
        except KafkaError as err:
            raise PublishError(
                f"flush did not complete: {type(err).__name__}", retriable=True
            ) from err

    async def close(self, timeout: float | None = None) -> None:
        """Flush and close; later calls raise :class:`PublishError`. Idempotent."""
        if self._mark_closed():
            loop = asyncio.get_running_loop()
            wait = self.timeout if timeout is None else timeout
            await loop.run_in_executor(None, self._producer.close, wait)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _bridge(loop: asyncio.AbstractEventLoop, future: Any) -> asyncio.Future[Any]:
    """An asyncio future settled, on ``loop``, by kafka-python's future (from its sender thread)."""
    bridged: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if bridged.done():  # cancelled by a timeout meanwhile
            return
        if error is None:
            bridged.set_result(value)
        else:
            bridged.set_exception(error)

    def post(value: Any, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(settle, value, error)

    future.add_callback(post, error=None)
    future.add_errback(lambda error: post(None, error))
    return bridged
