"""The HTTP server the sidecar's endpoints, the receivers and the relay's status run on.

A Starlette application served by uvicorn (httptools) from a daemon thread with its own event
loop. Measured here with wrk, 16 kept-alive connections on ``POST /v1/check``: about 9,000 to
13,000 requests/s with p99 under 7 ms, against 330 requests/s (p50 44 ms, Nagle's algorithm
meeting delayed ACKs) for the standard library's ``ThreadingHTTPServer`` it replaces.

What every server here does the same way:

- It binds loopback addresses only unless the caller allows others; the socket is bound when
  the server is built, so a taken port is a :class:`ConfigurationError` at once.
- Every connection is held to :class:`HTTPLimits` (see ``_http_limits``): a request head must
  arrive within 10 s and stay within 8 KiB of target and 16 KiB / 100 header lines (else 408,
  414, 431, all counted and logged at most once a minute), two ``Authorization`` headers are a
  400, and at the ceiling of 1,024 connections a new one closes the connection idle longest.
- Bodies are bounded (``413``) and must arrive within ``read_timeout`` (``408``). A slow client
  holds a coroutine, never a thread.
- Answers are JSON (:func:`json_response`), unknown paths ``404`` and wrong methods ``405``, as
  JSON too.
- :meth:`BackgroundHTTPServer.stop` shuts down gracefully: requests in flight finish (within
  ``shutdown_timeout``), then the socket closes.
- Request lines are logged at debug level only; tokens and SETs travel in headers and bodies,
  which are never logged.

Private to the package (the sidecar, receivers and relay import it from here), and needs the
``[http]`` extra: without it, importing this module raises ``MissingExtraError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Sequence
from typing import Any

from ._errors import ConfigurationError, RevocationError
from ._extras import needs_extra
from ._http_limits import ConnectionGuard, HTTPLimits, guarded_protocol

with needs_extra("http", __name__):
    import uvicorn
    from prometheus_client import CollectorRegistry, generate_latest
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute


logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
"""The default bound on a request body."""
READ_TIMEOUT = 10.0
"""Seconds a request body may take to arrive."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_address(text: str, *, flag: str = "--http") -> tuple[str, int]:
    """Read ``HOST:PORT`` (``[::1]:8080`` for IPv6)."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigurationError(f"{flag} takes HOST:PORT, e.g. 127.0.0.1:8080; got {text!r}")
    return host.strip("[]"), int(port)


def json_response(
    status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None
) -> Response:
    """An answer with a JSON body, or with no body when ``body`` is None."""
    if body is None:
        return Response(status_code=status, headers=headers)
    return Response(
        json.dumps(body).encode(),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


class BodyError(RevocationError):
    """The request body cannot be read; ``answer`` says how to refuse it."""

    def __init__(self, answer: Response) -> None:
        super().__init__(answer.status_code)
        self.answer = answer


async def read_body(
    request: Request, *, max_bytes: int = MAX_BODY_BYTES, timeout: float = READ_TIMEOUT
) -> bytes:
    """The request body, or :class:`BodyError` (411 no length, 413 too long, 408 too slow)."""
    try:
        length = int(request.headers.get("content-length", ""))
    except ValueError:
        raise BodyError(json_response(411, {"error": "Content-Length is required"})) from None
    if length > max_bytes:
        raise BodyError(json_response(413, {"error": f"body over {max_bytes} bytes"}))
    try:
        # asyncio.timeout, not wait_for: wait_for runs the read in a task of its own, which
        # put the p99 of POST /v1/check at 35 ms against 2.3 ms without it (wrk, 16 kept-alive
        # connections, this machine).
        async with asyncio.timeout(timeout):
            return await request.body()
    except TimeoutError:
        raise BodyError(
            json_response(408, {"error": f"the body did not arrive within {timeout} s"})
        ) from None
    except ClientDisconnect:
        raise BodyError(json_response(400, {"error": "the client went away"})) from None


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status in (404, 405):
        detail = f"no such endpoint: {request.method} {request.url.path}"
    else:
        detail = str(getattr(exc, "detail", "")) or "error"
    return json_response(status, {"error": detail})


def json_app(routes: Sequence[BaseRoute]) -> Starlette:
    """A Starlette app whose 404 and 405 answers are JSON like every other answer."""
    return Starlette(routes=list(routes), exception_handlers={HTTPException: _http_error})


class BackgroundHTTPServer:
    """Serves an ASGI app with uvicorn from a daemon thread; loopback only unless allowed."""

    def __init__(
        self,
        app: Any,
        *,
        host: str,
        port: int,
        name: str,
        allow_remote: bool,
        remote_warning: str,
        limits: HTTPLimits | None = None,
        shutdown_timeout: float = 5.0,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        if not allow_remote and not is_loopback(host):
            raise ConfigurationError(
                f"refusing to serve on {host!r}: {remote_warning}; bind a loopback address, "
                "or pass allow_remote=True (--http-allow-remote)"
            )
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only for it, and
        # without it a JSON answer (headers, then body) waits about 40 ms for a delayed ACK
        # (Nagle): 358 requests/s on 16 kept-alive connections, against about 9,500 with it.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((host, port))
            sock.listen(1024)
        except OSError as err:
            sock.close()
            raise ConfigurationError(f"cannot listen on {host}:{port}: {err.strerror}") from err
        sock.setblocking(False)
        self._socket = sock
        self._name = name
        self.read_timeout = read_timeout
        """Seconds a request body may take to arrive; handlers pass it to :func:`read_body`."""
        limits = limits or HTTPLimits()
        self.guard = ConnectionGuard(name, limits)
        """The connections' limits and refusal counts (:meth:`ConnectionGuard.collector` gives
        them as metrics)."""
        self._config = uvicorn.Config(
            app,
            http=guarded_protocol(self.guard),
            ws="none",
            loop="asyncio",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_keep_alive=limits.keep_alive,  # type: ignore[arg-type]  # call_later takes floats
            limit_concurrency=None,  # the guard's ceiling instead: it closes idle connections
            timeout_graceful_shutdown=int(max(1, shutdown_timeout)),
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def http_metrics(self) -> bytes:
        """The Prometheus text format of the connections' refusals and count (see
        :mod:`._http_limits`), to append to a server's own ``/metrics``."""
        registry = CollectorRegistry()
        registry.register(self.guard.collector())
        return generate_latest(registry)

    @property
    def address(self) -> tuple[str, int]:
        """The host and port the server listens on (the real port when 0 was asked)."""
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in a daemon thread; return once the server accepts connections."""
        if self._thread is not None:
            return
        server = uvicorn.Server(self._config)
        self._server = server
        self._thread = threading.Thread(
            target=asyncio.run,
            args=(server.serve(sockets=[self._socket]),),
            name=self._name,
            daemon=True,
        )
        self._thread.start()
        while not server.started and self._thread.is_alive():
            self._thread.join(0.01)
        if not server.started:
            raise ConfigurationError(f"the HTTP server {self._name} did not start")
        logger.info("http listening name=%s address=%s:%d", self._name, *self.address)

    def stop(self) -> None:
        """Finish requests in flight, stop serving and close the socket; idempotent."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join((self._config.timeout_graceful_shutdown or 5) + 5)
            self._thread = None
        with contextlib.suppress(OSError):
            self._socket.close()
