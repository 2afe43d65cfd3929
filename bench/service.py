"""A service process for the rows measured across processes, and the parent's handle on it.

Run as ``python -m bench.service MODE --bootstrap B --topic T [--name N]``, the child builds
what a service builds: a :class:`RevocationSidecar` on the topic, started, and a verifier of the
bench's HS256 key (the verifier's default cache, as ``jwt-revocation sidecar`` has it). It
speaks one line at a time on its standard streams and stops, sidecar and all, when its standard
input closes:

``http``
    Also serves the sidecar's :class:`SidecarHTTPServer` on a free loopback port. Prints
    ``{"pid": ..., "port": ...}`` once it serves.
``watch``
    Prints ``{"pid": ...}`` once ready, then reads tokens, one a line, up to an empty line:
    each must be accepted now, and its jti is watched. Prints ``armed COUNT``, then for every
    watched jti that its state applies one line ``JTI TIME``: ``time.time()`` just after the
    state held the jti (from then on a verify rejects it, since verifies read the state
    without its lock), sent once its own verifier has rejected the token.

The time comes from a hook on the child's state (its ``apply``, wrapped before the sidecar
starts), not from polling: every child waits on a queue, so a quiet child spends nothing and
the hook costs one dict lookup per applied event. Polling the verifier every 100 µs in 32
processes would wake them 320,000 times a second on a 2-core machine that also runs the
broker. The clock is the machine's one wall clock, shared by the parent and every child.

:class:`ServiceProcess` is the parent's side: it starts the child, reads its lines with a
deadline, reads its CPU time and RSS from ``/proc``, and stops it (``close``, so
``contextlib.closing`` manages it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from typing import Any

from jwt_revocation.consumer import (
    RevocationSidecar,
    RevocationState,
    SidecarHTTPServer,
    TokenRevokedError,
)
from jwt_revocation.shared import Event, TokenRevoked

from .fixtures import LIFETIME, verifier

MODES = ("http", "watch")


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) a process has used so far, from ``/proc/PID/stat``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """A process's resident set size, from ``VmRSS`` in ``/proc/PID/status``."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for process {pid}")


class ServiceProcess:
    """A ``python -m bench.service`` child: started, read line by line, measured, stopped."""

    def __init__(self, mode: str, bootstrap: str, topic: str, name: str) -> None:
        self.name = name
        options = ["--bootstrap", bootstrap, "--topic", topic, "--name", name]
        self._child = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
            [sys.executable, "-m", "bench.service", mode, *options],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._buffer = b""
        self.hello: dict[str, Any] = {}
        """The first line the child printed, once :meth:`wait_ready` has read it."""

    @property
    def pid(self) -> int:
        return self._child.pid

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """The child's first line, once it is ready."""
        self.hello = json.loads(self.line(time.monotonic() + timeout))
        return self.hello

    def send(self, lines: list[str]) -> None:
        """Write lines to the child's standard input."""
        assert self._child.stdin is not None
        self._child.stdin.write("".join(f"{line}\n" for line in lines).encode())
        self._child.stdin.flush()

    def line(self, deadline: float) -> str:
        """The child's next line; raises ``TimeoutError`` at ``deadline`` (monotonic)."""
        assert self._child.stdout is not None
        fd = self._child.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError(f"{self.name} said nothing in time")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"{self.name} exited with {self._child.wait()}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def cpu(self) -> float:
        """CPU seconds the child has used so far."""
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        """The child's resident set size in bytes."""
        return rss_bytes(self.pid)

    def hang_up(self) -> None:
        """Close the child's standard input without waiting: it stops its sidecar and exits."""
        assert self._child.stdin is not None
        # A child that has gone already needs telling nothing.
        with contextlib.suppress(BrokenPipeError):
            self._child.stdin.close()

    def close(self, timeout: float = 15.0) -> None:
        """Hang up and wait for the child to exit; kill it if it hangs."""
        if self._child.poll() is None:
            self.hang_up()
            try:
                self._child.wait(timeout)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()


# -- the child ----------------------------------------------------------------------------


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _serve(sidecar: RevocationSidecar) -> None:
    server = SidecarHTTPServer(sidecar, verifier(sidecar, cache_size=4096), port=0)
    server.start()
    try:
        _say(json.dumps({"pid": os.getpid(), "port": server.address[1]}))
        sys.stdin.read()
    finally:
        server.stop()


class _Watch:
    """The watch child's tokens by jti, and when its state applied each jti."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.applied: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()

    def hook(self, state: RevocationState) -> None:
        """Note the time each watched jti is applied to ``state``; set before it starts."""
        apply, tokens, applied = state.apply, self.tokens, self.applied

        def hooked(event: Event, now: float) -> bool:
            changed = apply(event, now)
            if isinstance(event, TokenRevoked) and event.jti in tokens:
                applied.put((event.jti, time.time()))
            return changed

        state.apply = hooked  # type: ignore[method-assign]

    def run(self, sidecar: RevocationSidecar) -> None:
        """Arm the tokens read from stdin, then report each applied jti until stdin closes."""
        check = verifier(sidecar, cache_size=4096)
        _say(json.dumps({"pid": os.getpid()}))
        for line in sys.stdin:
            if not line.strip():
                break
            token = line.strip()
            self.tokens[str(check.verify(token)["jti"])] = token
        _say(f"armed {len(self.tokens)}")

        def report() -> None:
            while True:
                jti, at = self.applied.get()
                try:
                    check.verify(self.tokens[jti])
                except TokenRevokedError:
                    _say(f"{jti} {at:.6f}")
                else:
                    _say(f"{jti} accepted")

        threading.Thread(target=report, name="bench-report", daemon=True).start()
        sys.stdin.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.service")
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--name", default="bench-service")
    args = parser.parse_args(argv)
    sidecar = RevocationSidecar(
        args.bootstrap, args.topic, max_token_lifetime=LIFETIME, name=args.name
    )
    watch = _Watch()
    if args.mode == "watch":
        watch.hook(sidecar.state)
    sidecar.start(timeout=600)
    try:
        if args.mode == "http":
            _serve(sidecar)
        else:
            watch.run(sidecar)
    finally:
        sidecar.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
