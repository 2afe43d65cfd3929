"""What a client may send before it is a request, and how many may be connected at once.

Every HTTP door of this package (the HTTP sidecar, the receiver, the relay's status) is uvicorn
serving httptools' parser. uvicorn bounds neither the request head nor the time it may take,
and its connection ceiling answers 503 to everyone once idle connections fill it: measured on
loopback, 1,024 connections that never sent a byte stayed open (75 s and more) and then 199 of
201 honest requests were refused; four 64 MiB headers were taken in, one at a time, into memory.
:class:`GuardedProtocol` is uvicorn's ``HttpToolsProtocol`` with these rules added (each
:class:`HTTPLimits` setting with its default; a refusal is a JSON ``{"error": ...}`` with
``Connection: close``, then the connection closes; its ``reason`` in parentheses):

- ``header_timeout`` (10 s): a request head (request line and headers) not complete this long
  after its first byte, or after the connection opened: 408, or no answer when nothing came
  (``header_timeout``).
- ``max_path_bytes`` (8 KiB): a longer request target, path and query: 414 as soon as the
  bytes past the limit arrive (``path_too_long``).
- ``max_header_bytes`` (16 KiB): longer header lines in all: 431 as soon as the bytes past the
  limit arrive (``headers_too_large``).
- ``max_headers`` (100): more header lines: 431 (``too_many_headers``).
- Always: two ``Authorization`` headers, on which proxies disagree: 400
  (``two_authorizations``); not HTTP/1.x: 400 (``malformed``).
- ``max_connections`` (1,024): a new connection at the ceiling closes the connection idle
  longest, no request yet or kept alive between requests (``idle_closed``); with none idle it
  is answered 503 with ``Retry-After: 1`` (``over_capacity``).
- ``keep_alive`` (5 s): a kept-alive connection with no new request is closed (not counted).

So idle connections cannot starve honest clients (they make room), and connections busy with a
request are bounded by the body's ``read_timeout`` and the handler. The bytes of a refused head
are never buffered past one read (256 KiB at most): the refusal is written, the rest is read and
dropped for up to a second or 1 MiB (so that the client sees the answer, not a reset), and the
connection closes. Measured after these rules, same machine and attacks: 100 of 100 honest
requests answered beside 1,200 idle connections; four 64 MiB headers raised the server's peak
memory 4 MiB (before: 102 MiB) with honest p50 1.3 ms (before: 1,069 ms); 200,000 headers and a
64 MiB path were refused in under 10 ms (before: 200 after 3.8 s, 400 after 22 s).

Refusals are counted by ``reason`` (:attr:`ConnectionGuard.counts`, the metric
``jwt_revocation_http_refusals_total{server,reason}``) and logged as one WARNING line at most
once per ``log_interval`` (60 s), with the counts since the last line: a flood costs no log
volume. The ceiling is lowered, with a warning, to half the process's open-file limit when that
is smaller, so that ``accept`` never fails for want of descriptors.

uvicorn's parsing and ASGI handling are otherwise unchanged; the methods overridden here are its
parser callbacks and connection events (tested with the uvicorn that ``constraints.txt`` pins).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import resource
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from ._clock import Clock
from ._errors import ConfigurationError, RevocationError
from ._extras import needs_extra
from ._settings import RevocationSettings

with needs_extra("http", __name__):
    import httptools
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

logger = logging.getLogger(__name__)

REFUSAL_REASONS = (
    "header_timeout",
    "path_too_long",
    "headers_too_large",
    "too_many_headers",
    "two_authorizations",
    "malformed",
    "over_capacity",
    "idle_closed",
)

"""Every ``reason`` a :class:`ConnectionGuard` counts."""

LINGER = 1.0
"""Seconds a refused connection is still read (and the bytes dropped) before it closes: closing
with unread bytes makes the kernel send a reset, which can destroy the answer before the client
reads it."""
LINGER_BYTES = 1024 * 1024
"""Bytes a refused connection may still send (dropped) before it is closed at once."""
_HEAD_SLACK = 64
"""Bytes of a request head that are neither target nor header lines: method, version, CRLFs."""


@dataclass(frozen=True)
class HTTPLimits:
    """The limits every connection of one HTTP server is held to (see the module's table)."""

    header_timeout: float = 10.0
    """Seconds a request head may take, from its first byte (from the connection's opening for
    the first request)."""
    max_header_bytes: int = 16 * 1024
    """Bytes of all header lines of one request (names, values, separators)."""
    max_headers: int = 100
    """Header lines of one request."""
    max_path_bytes: int = 8 * 1024
    """Bytes of the request target (path and query)."""
    max_connections: int = 1024
    """Open connections; at the ceiling a new one closes the connection idle longest."""
    keep_alive: float = 5.0
    """Seconds a kept-alive connection may wait for its next request."""
    log_interval: float = 60.0
    """Seconds between two log lines about refusals."""

    @classmethod
    def from_settings(cls, settings: RevocationSettings) -> HTTPLimits:
        """The limits ``JWT_REVOCATION_HTTP_*`` set (the CLI's servers use them)."""
        return cls(
            header_timeout=settings.http_header_timeout.total_seconds(),
            max_header_bytes=settings.http_max_header_bytes,
            max_headers=settings.http_max_headers,
            max_path_bytes=settings.http_max_path_bytes,
            max_connections=settings.http_max_connections,
        )

    def __post_init__(self) -> None:
        for name in ("header_timeout", "keep_alive", "log_interval"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigurationError(f"HTTPLimits.{name} must be a positive number of seconds")
        for name in ("max_header_bytes", "max_headers", "max_path_bytes", "max_connections"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"HTTPLimits.{name} must be at least 1")


def _open_file_share() -> int:
    """Half the process's open-file limit: the most connections that leave room for the rest."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft // 2 if soft != resource.RLIM_INFINITY else 1 << 30


class ConnectionGuard:
    """What one server's connections share: the limits, who is idle, and the refusal counts."""

    def __init__(self, name: str, limits: HTTPLimits, *, clock: Clock = time.monotonic) -> None:
        self.name = name
        self.limits = limits
        ceiling = _open_file_share()
        self.max_connections = min(limits.max_connections, max(1, ceiling))
        if self.max_connections < limits.max_connections:
            logger.warning(
                "http max_connections lowered name=%s from=%d to=%d: the process may open only "
                "%d files; raise the limit (ulimit -n) to allow more",
                name,
                limits.max_connections,
                self.max_connections,
                2 * ceiling,
            )
        self.open = 0
        """Connections open now."""
        self.counts = dict.fromkeys(REFUSAL_REASONS, 0)
        """Refusals by reason since the start (every key present: safe to copy from any
        thread)."""
        self._idle: OrderedDict[GuardedProtocol, None] = OrderedDict()
        self._unlogged = dict.fromkeys(REFUSAL_REASONS, 0)
        self._logged_at = -math.inf
        self._clock = clock
        self._swept_loop: asyncio.AbstractEventLoop | None = None
        # One sweep for all the connections rather than a timer each: arming and cancelling a
        # timer for every request head cost 5 us of the protocol's 21 us per kept-alive request.
        self.sweep_interval = min(1.0, limits.header_timeout / 4)
        """Seconds between two looks for request heads past their deadline: a head is cut
        between ``header_timeout`` and that plus this."""

    def refused(self, reason: str) -> None:
        """Count a refusal; log the counts since the last line if that was an interval ago."""
        self.counts[reason] += 1
        self._unlogged[reason] += 1
        now = self._clock()
        if now - self._logged_at < self.limits.log_interval:
            return
        self._logged_at = now
        counted = ", ".join(f"{k}={v}" for k, v in self._unlogged.items() if v)
        logger.warning(
            "http refused name=%s %s (counts since the last such line; at most one every %g s)",
            self.name,
            counted,
            self.limits.log_interval,
        )
        self._unlogged = dict.fromkeys(REFUSAL_REASONS, 0)

    def sweep_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """Look for overdue request heads on ``loop`` from now on (once per loop)."""
        if self._swept_loop is not loop:
            self._swept_loop = loop
            loop.call_later(self.sweep_interval, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._swept_loop is not loop:
            return  # the server was restarted on another loop
        deadline = loop.time() - self.limits.header_timeout
        overdue = [
            c for c in self._idle if c.head_started is not None and c.head_started <= deadline
        ]
        for connection in overdue:
            connection.head_timed_out()
        loop.call_later(self.sweep_interval, self._sweep, loop)

    def idle(self, connection: GuardedProtocol) -> None:
        """The connection waits for a request: it may be closed to make room."""
        self._idle[connection] = None
        self._idle.move_to_end(connection)

    def busy(self, connection: GuardedProtocol) -> None:
        """The connection has a request in hand: it is never closed to make room."""
        self._idle.pop(connection, None)

    def admit(self, connection: GuardedProtocol) -> bool:
        """Count a new connection; at the ceiling close the idlest one, or refuse (False)."""
        self.open += 1
        if self.open <= self.max_connections:
            return True
        while self._idle:
            idlest, _ = self._idle.popitem(last=False)
            if idlest.close_idle():
                self.refused("idle_closed")
                return True
        self.open -= 1
        return False

    def closed(self, connection: GuardedProtocol) -> None:
        """Forget an admitted connection that closed."""
        self._idle.pop(connection, None)
        self.open -= 1

    def collector(self) -> Collector:
        """Prometheus metrics: refusals by reason, and the connections open now."""
        return _GuardCollector(self)


class _GuardCollector(Collector):
    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard

    def collect(self) -> Iterator[Metric]:
        guard = self.guard
        refusals = CounterMetricFamily(
            "jwt_revocation_http_refusals",
            "Requests and connections an HTTP server refused or closed, by reason "
            "(header_timeout, path_too_long, headers_too_large, too_many_headers, "
            "two_authorizations, malformed, over_capacity, idle_closed)",
            labels=["server", "reason"],
        )
        for reason, count in dict(guard.counts).items():
            refusals.add_metric([guard.name, reason], float(count))
        yield refusals
        connections = GaugeMetricFamily(
            "jwt_revocation_http_connections",
            "Connections an HTTP server has open now",
            labels=["server"],
        )
        connections.add_metric([guard.name], float(guard.open))
        yield connections


class _RefusedError(RevocationError):
    """Raised from a parser callback to stop parsing a request that is refused; caught by the
    protocol, never seen outside it."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.message = message


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol held to a :class:`ConnectionGuard`'s limits.

    A server uses a subclass made by :func:`guarded_protocol`, which names its guard.
    """

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_started: float | None = None
        """When the request head under way began (the loop's time), or None."""
        self._in_head = True
        """Between a request's first byte (or the connection's opening) and its last header."""
        self._head_bytes = 0
        self._target_bytes = 0
        self._header_bytes = 0
        self._header_lines = 0
        self._authorizations = 0
        self._refused = False
        self._dropped = 0
        self._admitted = False

    # -- connection events ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._admitted = self.guard.admit(self)
        if not self._admitted:
            self._refuse(
                _RefusedError(503, "over_capacity", "too many connections; retry in a second"),
                retry_after=True,
            )
            return
        self.guard.idle(self)
        self.guard.sweep_on(self.loop)
        self.head_started = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self.head_started = None
        if self._admitted:  # not when refused at the ceiling or closed to make room
            self._admitted = False
            self.guard.closed(self)
        super().connection_lost(exc)

    def close_idle(self) -> bool:
        """Close this connection to make room, unless it is closing already; True if closed."""
        if self.transport.is_closing() or not self._admitted:
            return False
        self._admitted = False
        self.guard.open -= 1
        self.head_started = None
        self.transport.close()
        return True

    def data_received(self, data: bytes) -> None:
        if self._refused:  # a refused connection's remaining bytes are dropped until it closes
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.transport.close()
            return
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Nothing here speaks another protocol: the request is answered as plain HTTP,
            # then the connection closes.
            if self.cycle is None or self.cycle.response_complete:
                self.transport.close()
            else:
                self.cycle.keep_alive = False
            return
        except httptools.HttpParserError as err:
            refusal = err.__context__
            if not isinstance(refusal, _RefusedError):
                refusal = _RefusedError(400, "malformed", "the request is not valid HTTP/1.1")
            self._refuse(refusal)
            return
        limits = self.guard.limits
        if self._in_head and (
            self._head_bytes - self._target_bytes > limits.max_header_bytes + _HEAD_SLACK
        ):
            self._refuse(_headers_too_large(limits))

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # a request after the first on this connection
            self._in_head = True
            self._head_bytes = 0
        self._target_bytes = self._header_bytes = self._header_lines = self._authorizations = 0
        if self.head_started is None:
            self.head_started = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self._target_bytes += len(url)
        limit = self.guard.limits.max_path_bytes
        if self._target_bytes > limit:
            raise _RefusedError(414, "path_too_long", f"the request target is over {limit} bytes")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        limits = self.guard.limits
        self._header_lines += 1
        self._header_bytes += len(name) + len(value) + 4
        if self._header_lines > limits.max_headers:
            raise _RefusedError(
                431, "too_many_headers", f"more than {limits.max_headers} header lines"
            )
        if self._header_bytes > limits.max_header_bytes:
            raise _headers_too_large(limits)
        if name.lower() == b"authorization":
            self._authorizations += 1
            if self._authorizations > 1:
                raise _RefusedError(
                    400, "two_authorizations", "a request may carry one Authorization header"
                )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self.head_started = None
        self.guard.busy(self)
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn arms its keep-alive timer only when no pipelined request follows.
        if self.timeout_keep_alive_task is not None and not self.transport.is_closing():
            self.guard.idle(self)

    # -- refusals ------------------------------------------------------------------------

    def head_timed_out(self) -> None:
        """The request head is past its deadline: refuse it (408), or close a connection that
        sent nothing."""
        self.head_started = None
        if self.transport.is_closing():
            return
        timeout = self.guard.limits.header_timeout
        if self._head_bytes == 0:  # nothing came: close without an answer
            self.guard.refused("header_timeout")
            self._refused = True
            self.transport.close()
            return
        self._refuse(
            _RefusedError(
                408, "header_timeout", f"the request head did not arrive within {timeout} s"
            )
        )

    def _refuse(self, refusal: _RefusedError, *, retry_after: bool = False) -> None:
        """Answer ``refusal`` (unless a request is being answered), read and drop what still
        comes for :data:`LINGER` seconds, and close."""
        self._refused = True
        self.head_started = None
        self.guard.refused(refusal.reason)
        self.guard.busy(self)
        transport = self.transport
        if transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            transport.close()  # an answer is under way: no second one can be written
            return
        body = json.dumps({"error": refusal.message}).encode()
        head = [
            STATUS_LINE[refusal.status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
        ]
        if retry_after:
            head.append(b"retry-after: 1\r\n")
        transport.write(b"".join(head) + b"\r\n" + body)
        if transport.can_write_eof():
            transport.write_eof()
        transport.resume_reading()
        self.loop.call_later(LINGER, transport.close)


def _headers_too_large(limits: HTTPLimits) -> _RefusedError:
    return _RefusedError(
        431, "headers_too_large", f"the header lines are over {limits.max_header_bytes} bytes"
    )


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedProtocol]:
    """A :class:`GuardedProtocol` class for one server, for uvicorn's ``http=`` setting."""
    return type("GuardedProtocol", (GuardedProtocol,), {"guard": guard})
