"""The HTTP servers' connection hygiene (``shared._http_limits``), without a socket: the guarded
protocol is fed bytes, split anywhere, through a transport that records what it writes."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from uvicorn.config import Config
from uvicorn.server import ServerState

from jwt_revocation.shared import ConfigurationError, HTTPLimits, RevocationSettings
from jwt_revocation.shared._http_limits import (
    LINGER_BYTES,
    ConnectionGuard,
    GuardedProtocol,
    guarded_protocol,
)
from tests.support import FakeClock

LIMITS = HTTPLimits(max_header_bytes=1024, max_headers=10, max_path_bytes=256, max_connections=3)


class _Transport(asyncio.Transport):
    """Records what the protocol writes; closes and shuts down only in its own state."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False
        self.eof = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    @property
    def status(self) -> int | None:
        """The status of the first answer written, if any."""
        if not self.written:
            return None
        return int(bytes(self.written).split(b" ", 2)[1])


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = json.dumps({"path": scope["path"]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _Server:
    """One guard and the protocol class of a server, with connections made on demand."""

    def __init__(self, limits: HTTPLimits = LIMITS, clock: FakeClock | None = None) -> None:
        self.guard = ConnectionGuard("test", limits, clock=clock or FakeClock())
        self.protocol = guarded_protocol(self.guard)
        self.config = Config(_app, lifespan="off", log_config=None, timeout_keep_alive=5)
        self.config.load()
        self.state = ServerState()

    def connect(self, loop: asyncio.AbstractEventLoop) -> tuple[GuardedProtocol, _Transport]:
        connection = self.protocol(
            config=self.config, server_state=self.state, app_state={}, _loop=loop
        )
        transport = _Transport()
        connection.connection_made(transport)
        return connection, transport


def _serve(server: _Server, chunks: list[bytes]) -> _Transport:
    """Feed ``chunks`` to a new connection and let the app answer; the transport."""

    async def run() -> _Transport:
        connection, transport = server.connect(asyncio.get_running_loop())
        for chunk in chunks:
            if transport.closing:
                break
            connection.data_received(chunk)
        for _ in range(5):
            await asyncio.sleep(0)
        connection.connection_lost(None)
        return transport

    return asyncio.run(run())


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _request(target_bytes: int, headers: list[tuple[str, int]]) -> bytes:
    lines = [f"GET /{'a' * (target_bytes - 1)} HTTP/1.1"]
    lines += [f"{name}: {'v' * size}" for name, size in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _expected(target_bytes: int, headers: list[tuple[str, int]]) -> set[int]:
    """The statuses the limits allow for this request (several where two rules race)."""
    if target_bytes > LIMITS.max_path_bytes:
        return {414}
    total = 0
    authorizations = 0
    for count, (name, size) in enumerate(headers, 1):
        total += len(name) + size + 4
        if count > LIMITS.max_headers:
            return {431}
        if total > LIMITS.max_header_bytes:
            return {431}
        if name.lower() == "authorization":
            authorizations += 1
            if authorizations > 1:
                # A header still arriving may already be over the byte limit.
                over = sum(len(n) + s + 4 for n, s in headers) > LIMITS.max_header_bytes
                return {400, 431} if over else {400}
    return {200}


header_names = st.sampled_from(["Host", "X-A", "Authorization", "authorization", "Accept"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    target=st.integers(1, 400),
    headers=st.lists(st.tuples(header_names, st.integers(0, 400)), max_size=14),
    cuts=st.lists(st.integers(0, 1 << 16), max_size=8),
)
def test_every_request_head_gets_the_answer_its_limits_say_however_it_is_split(
    target: int, headers: list[tuple[str, int]], cuts: list[int]
) -> None:
    server = _Server()
    transport = _serve(server, _split(_request(target, headers), cuts))

    assert transport.status in _expected(target, headers)
    if transport.status != 200:
        assert transport.written.count(b"HTTP/1.1 ") == 1  # one refusal, nothing else
        assert b"connection: close" in transport.written
        assert transport.eof
        assert sum(server.guard.counts.values()) == 1


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048), cuts=st.lists(st.integers(0, 4096), max_size=6))
def test_any_bytes_are_answered_or_refused_never_an_exception(data: bytes, cuts: list[int]) -> None:
    server = _Server()
    transport = _serve(server, _split(data, cuts))

    assert transport.status in (None, 200, 400, 404, 405, 414, 431)
    assert server.guard.open == 0


@settings(max_examples=100, deadline=None)
@given(
    prefix=st.binary(max_size=64).filter(lambda b: b"\r\n\r\n" not in b),
    size=st.integers(LIMITS.max_header_bytes + 200, 1 << 20),
)
def test_an_endless_header_is_refused_before_it_ends(prefix: bytes, size: int) -> None:
    head = b"GET / HTTP/1.1\r\nX-Big: " + b"v" * size  # never completed
    server = _Server()
    transport = _serve(server, [head[i : i + 65536] for i in range(0, len(head), 65536)])

    assert transport.status in (400, 431)


def test_a_refused_connection_drops_what_still_comes_then_closes() -> None:
    async def run() -> tuple[_Transport, bool, bool]:
        server = _Server()
        connection, transport = server.connect(asyncio.get_running_loop())
        connection.data_received(b"GET /" + b"a" * 300)
        assert transport.status == 414
        written = len(transport.written)
        connection.data_received(b"b" * (LINGER_BYTES // 2))
        open_after_some = not transport.closing
        connection.data_received(b"b" * LINGER_BYTES)
        assert len(transport.written) == written  # nothing more was answered
        return transport, open_after_some, transport.closing

    _, open_after_some, closed = asyncio.run(run())
    assert open_after_some
    assert closed


def test_at_the_ceiling_a_new_connection_closes_the_idlest_one() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = _Server()
        connections = [server.connect(loop) for _ in range(3)]
        # The first connection makes a request: it is then idle from its answer's end.
        connections[0][0].data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(5):
            await asyncio.sleep(0)
        assert connections[0][1].status == 200

        fourth_connection, fourth = server.connect(loop)  # over the ceiling of 3: the idlest closes
        assert connections[1][1].closing  # never sent a byte, opened first
        assert not fourth.closing
        assert not connections[0][1].closing
        assert server.guard.counts["idle_closed"] == 1
        assert server.guard.open == 3

        # With every connection busy (a request head in hand), a new one is refused.
        busy = [connections[0], connections[2], (fourth_connection, fourth)]
        for connection, _ in busy:
            connection.data_received(b"POST /b HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
        _, refused = server.connect(loop)
        assert refused.status == 503
        assert b"retry-after: 1" in refused.written
        assert server.guard.counts["over_capacity"] == 1
        assert server.guard.open == 3
        assert not any(transport.closing for _, transport in busy)
        for connection, _ in busy:
            connection.connection_lost(None)
        assert server.guard.open == 0

    asyncio.run(run())


def test_a_request_head_past_its_deadline_is_cut_off() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = _Server(HTTPLimits(header_timeout=0.2))
        silent_connection, silent = server.connect(loop)
        slow_connection, slow = server.connect(loop)
        served_connection, served = server.connect(loop)
        slow_connection.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and no more
        served_connection.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        while not (silent.closing and slow.eof):  # the deadline plus one sweep at most
            await asyncio.sleep(0.05)
        assert silent.written == b""  # nothing came: closed without an answer
        assert slow.status == 408
        assert served.status == 200
        assert not served.closing  # kept alive: the head was complete in time
        assert server.guard.counts["header_timeout"] == 2
        for connection in (silent_connection, slow_connection, served_connection):
            connection.connection_lost(None)

    asyncio.run(asyncio.wait_for(run(), 5))


def test_refusals_are_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(100.0)
    server = _Server(clock=clock)
    with caplog.at_level(logging.WARNING, logger="jwt_revocation"):
        for _ in range(50):
            _serve(server, [b"GET /" + b"a" * 300])
        clock.advance(LIMITS.log_interval)
        _serve(
            server,
            [b"GET / HTTP/1.1\r\nA: 1\r\na: 2\r\nAuthorization: x\r\nAuthorization: y\r\n\r\n"],
        )

    lines = [r.getMessage() for r in caplog.records if "http refused" in r.getMessage()]
    assert lines == [
        "http refused name=test path_too_long=1 (counts since the last such line; at most one "
        "every 60 s)",
        "http refused name=test path_too_long=49, two_authorizations=1 (counts since the last "
        "such line; at most one every 60 s)",
    ]
    assert server.guard.counts["path_too_long"] == 50


@pytest.mark.parametrize(
    "kwargs",
    [{"header_timeout": 0}, {"max_headers": 0}, {"max_connections": 0}, {"keep_alive": -1}],
)
def test_limits_must_be_positive(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        HTTPLimits(**kwargs)  # type: ignore[arg-type]


def test_the_cli_reads_the_limits_from_its_settings() -> None:
    settings = RevocationSettings(
        http_header_timeout="3s",  # type: ignore[arg-type]
        http_max_header_bytes=4096,
        http_max_headers=20,
        http_max_path_bytes=1024,
        http_max_connections=50,
    )

    assert HTTPLimits.from_settings(settings) == HTTPLimits(
        header_timeout=3.0,
        max_header_bytes=4096,
        max_headers=20,
        max_path_bytes=1024,
        max_connections=50,
    )
    assert HTTPLimits.from_settings(RevocationSettings()) == HTTPLimits()
