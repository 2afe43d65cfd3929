"""The small HTTP server the sidecar's endpoints and the Shared Signals receiver run on.

A standard-library ``ThreadingHTTPServer`` served from a daemon thread, bound to loopback
addresses unless the caller allows others, with a request handler that answers JSON, bounds
request bodies and logs request lines at debug level only.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from ._errors import ConfigurationError

logger = logging.getLogger(__name__)


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


class JSONRequestHandler(BaseHTTPRequestHandler):
    """A request handler with JSON answers and bounded bodies."""

    server_version = "jwt-revocation"
    protocol_version = "HTTP/1.1"
    max_body_bytes: ClassVar[int] = 1024 * 1024

    def read_body(self) -> bytes | None:
        """The request body; None once an error has been answered (no length, too long)."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.send_json(411, {"error": "Content-Length is required"})
            return None
        if length > self.max_body_bytes:
            self.send_json(413, {"error": f"body over {self.max_body_bytes} bytes"})
            return None
        return self.rfile.read(length)

    def send_json(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        """Answer with a JSON body."""
        self.send_body(status, json.dumps(body).encode(), "application/json", headers)

    def send_body(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer with ``body`` (which may be empty)."""
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines hold no token (tokens and SETs travel in bodies); keep them at debug.
        logger.debug("http %s", format % args)


class BackgroundHTTPServer:
    """A threading HTTP server served from a daemon thread; loopback only unless allowed."""

    def __init__(
        self,
        handler: type[JSONRequestHandler],
        *,
        host: str,
        port: int,
        name: str,
        allow_remote: bool,
        remote_warning: str,
    ) -> None:
        if not allow_remote and not is_loopback(host):
            raise ConfigurationError(
                f"refusing to serve on {host!r}: {remote_warning}; bind a loopback address, "
                "or pass allow_remote=True (--http-allow-remote)"
            )
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as err:
            raise ConfigurationError(f"cannot listen on {host}:{port}: {err.strerror}") from err
        self._server.daemon_threads = True
        self._name = name
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The host and port the server listens on (the real port when 0 was asked)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=self._name, daemon=True
        )
        self._thread.start()
        logger.info("http listening name=%s address=%s:%d", self._name, *self.address)

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent, and fine before :meth:`start`."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
