"""Row 11: ``POST /v1/check`` on a real HTTP sidecar under wrk, beside a Redis ``GET``.

The sidecar and its :class:`SidecarHTTPServer` run in a child process of their own
(:mod:`bench.service`), so this process's work never holds their GIL; wrk and redis-benchmark
are processes of their own too. Each round runs, in an order that rotates:

- ``check``: wrk on ``POST /v1/check``, the token in a JSON body (a Lua script sets it);
- ``auth``: wrk on ``GET /v1/auth``, the token in the ``Authorization`` header, as a reverse
  proxy forwards it;
- ``redis``: redis-benchmark ``GET`` of one key that holds the bytes of a ``/v1/check`` answer.

Both load generators keep :data:`CONNECTIONS` connections open with :data:`THREADS` threads and
send one request at a time on each connection (no pipelining). Each run gives requests/s, p50
and p99 from the generator's own latency histogram (wrk ``--latency``; the Lua script's
``done`` prints them as JSON); the row reports the median over rounds. The token is accepted
and the same on every request, so the verifier's cache answers it (row 2), as it answers a
service's repeat callers; the answer is checked once before the rounds, and every run counts
non-2xx answers and socket errors.
"""

from __future__ import annotations

import csv
import http.client
import json
import resource
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from bench.fixtures import Bench, token
from bench.harness import Report, interleave, load_average, ms
from bench.service import ServiceProcess, cpu_seconds

CONNECTIONS = 16
"""The issue's load: 16 kept-alive connections."""
THREADS = 2
"""Load generator threads: one per core of the 2-core test machine, for wrk and redis-benchmark
alike."""
KINDS = ("check", "auth", "redis")

_LUA = """wrk.method = "{method}"
wrk.body = {body}
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{{"requests": %d, "duration_us": %d, "p50_us": %.1f, "p99_us": %.1f, "max_us": %.1f, ' ..
    '"status_errors": %d, "socket_errors": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Run:
    """One load generator run."""

    rate: float
    """Requests per second."""
    p50: float
    p99: float
    """Seconds, from the generator's latency histogram."""
    errors: int
    """Non-2xx answers and socket errors (wrk); failed requests are not counted by
    redis-benchmark, which stops on an error."""
    server_cpu: float
    """Share of a core the server used: the sidecar's process, or redis-server."""
    client_cpu: float
    """Share of a core the load generator used."""


@dataclass(frozen=True)
class Figures:
    """What the HTTP group measured."""

    runs: dict[str, list[Run]]
    """By kind, one per round."""
    seconds: int
    redis_requests: int
    answer: str
    """``/v1/check``'s answer to the token, checked before the rounds."""
    subject: str | None
    """``/v1/auth``'s ``X-Auth-Subject`` for the token."""
    load: tuple[float, float]
    """The machine's 1-minute load average before and after the rounds."""


def measure(bench: Bench) -> Figures:
    """Serve a sidecar over HTTP from a child process; load it in rounds beside Redis."""
    sizes = bench.sizes
    topic = bench.topic("http")
    tok = token(str(uuid.uuid4()), "user-http", now=time.time(), ttl=1800)
    with (
        closing(ServiceProcess("http", bench.bootstrap, topic, "bench-http")) as service,
        tempfile.TemporaryDirectory(prefix="bench-http-") as folder,
    ):
        port = int(service.wait_ready(600)["port"])
        answer, subject = _ask(port, tok)
        key = f"{bench.prefix}:http-answer"
        bench.redis.set(key, answer.encode())
        body, json_type = json.dumps({"token": tok}), {"Content-Type": "application/json"}
        check = _script(Path(folder, "check.lua"), "POST", body, json_type)
        auth = _script(Path(folder, "auth.lua"), "GET", None, {"Authorization": f"Bearer {tok}"})
        base = f"http://127.0.0.1:{port}"
        _wrk(f"{base}/v1/check", check, 1, service.pid)  # warm-up: connections, caches
        runs: dict[str, list[Run]] = {kind: [] for kind in KINDS}
        variants: dict[str, Callable[[], Run]] = {
            "check": lambda: _wrk(f"{base}/v1/check", check, sizes.http_seconds, service.pid),
            "auth": lambda: _wrk(f"{base}/v1/auth", auth, sizes.http_seconds, service.pid),
            "redis": lambda: _redis_benchmark(bench, key, sizes.redis_requests),
        }

        def record(kind: str) -> Callable[[], list[float]]:
            def run() -> list[float]:
                runs[kind].append(variants[kind]())
                return []

            return run

        load = load_average()
        interleave(sizes.rounds, {kind: record(kind) for kind in KINDS})
    return Figures(
        runs, sizes.http_seconds, sizes.redis_requests, answer, subject, (load, load_average())
    )


def _ask(port: int, tok: str) -> tuple[str, str | None]:
    """``/v1/check``'s answer body for the token and ``/v1/auth``'s subject; both must accept."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = json.dumps({"token": tok})
        connection.request("POST", "/v1/check", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read().decode()
        if response.status != 200 or json.loads(answer).get("verdict") != "accepted":
            raise RuntimeError(f"/v1/check did not accept the token: {response.status} {answer}")
        connection.request("GET", "/v1/auth", headers={"Authorization": f"Bearer {tok}"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"/v1/auth did not accept the token: {response.status}")
        return answer, response.getheader("X-Auth-Subject")
    finally:
        connection.close()


def _script(path: Path, method: str, body: str | None, headers: dict[str, str]) -> Path:
    """A wrk Lua script that sends this request and prints its figures as JSON."""
    lines = "\n".join(f'wrk.headers["{name}"] = [==[{value}]==]' for name, value in headers.items())
    literal = "nil" if body is None else f"[==[{body}]==]"
    path.write_text(_LUA.format(method=method, body=literal, headers=lines), encoding="utf-8")
    return path


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wrk(url: str, script: Path, seconds: int, server: int) -> Run:
    """One wrk run against ``url``; ``server`` is the pid whose CPU share is reported."""
    command = ["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s"]
    server_before, client_before = cpu_seconds(server), _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - Debian's wrk, with our own script and loopback URL
        [*command, "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    elapsed = time.perf_counter() - started
    figures = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    return Run(
        rate=figures["requests"] / (figures["duration_us"] / 1e6),
        p50=figures["p50_us"] / 1e6,
        p99=figures["p99_us"] / 1e6,
        errors=int(figures["status_errors"]) + int(figures["socket_errors"]),
        server_cpu=(cpu_seconds(server) - server_before) / elapsed,
        client_cpu=(_children_cpu() - client_before) / elapsed,
    )


def _redis_cpu(bench: Bench) -> float:
    info = bench.redis.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _redis_benchmark(bench: Bench, key: str, requests: int) -> Run:
    """One redis-benchmark run: ``GET key`` at the same concurrency, as CSV."""
    options = bench.redis.connection_pool.connection_kwargs
    command = ["redis-benchmark", "-h", str(options.get("host", "127.0.0.1"))]
    command += ["-p", str(options.get("port", 6379)), "--dbnum", str(options.get("db", 0))]
    if options.get("password"):
        command += ["-a", str(options["password"]), "--no-auth-warning"]
    command += ["-c", str(CONNECTIONS), "--threads", str(THREADS), "-n", str(requests)]
    server_before, client_before = _redis_cpu(bench), _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - Debian's redis-benchmark against the bench's Redis
        [*command, "--csv", "GET", key], capture_output=True, text=True, timeout=600, check=True
    )
    elapsed = time.perf_counter() - started
    rows = list(csv.DictReader(done.stdout.splitlines()))
    if not rows:
        raise RuntimeError(f"redis-benchmark printed no figures: {done.stdout!r}")
    row = rows[-1]
    return Run(
        rate=float(row["rps"]),
        p50=float(row["p50_latency_ms"]) / 1e3,
        p99=float(row["p99_latency_ms"]) / 1e3,
        errors=0,
        server_cpu=(_redis_cpu(bench) - server_before) / elapsed,
        client_cpu=(_children_cpu() - client_before) / elapsed,
    )


@dataclass(frozen=True)
class _Summary:
    """Medians over a kind's rounds."""

    rate: float
    p50: float
    p99: float
    errors: int
    server_cpu: float
    client_cpu: float

    @classmethod
    def of(cls, runs: list[Run]) -> _Summary:
        return cls(
            statistics.median(r.rate for r in runs),
            statistics.median(r.p50 for r in runs),
            statistics.median(r.p99 for r in runs),
            sum(r.errors for r in runs),
            statistics.median(r.server_cpu for r in runs),
            statistics.median(r.client_cpu for r in runs),
        )

    def line(self) -> str:
        return f"{self.rate:,.0f} requests/s, p50 {ms(self.p50)}, p99 {ms(self.p99)}"


def report(figures: Figures) -> list[Report]:
    """Row 11."""
    runs = figures.runs
    check, auth, redis = (_Summary.of(runs[kind]) for kind in KINDS)
    met = check.rate >= 5_000 and check.p99 < 0.010 and check.errors == 0
    notes = [
        f"{kind} by round: "
        + "; ".join(f"{r.rate:,.0f}/s p50 {ms(r.p50)} p99 {ms(r.p99)}" for r in runs[kind])
        for kind in KINDS
    ]
    notes += [
        f"POST /v1/check: {check.line()}; {check.errors} errors; the sidecar's process used "
        f"{check.server_cpu:.0%} of a core, wrk {check.client_cpu:.0%}",
        f"GET /v1/auth (forward-auth, token in the Authorization header): {auth.line()}; "
        f"{auth.errors} errors; the sidecar's process used {auth.server_cpu:.0%} of a core, wrk "
        f"{auth.client_cpu:.0%}",
        f"Redis GET of the same answer's {len(figures.answer)} bytes: {redis.line()}; "
        f"redis-server used {redis.server_cpu:.0%} of a core, redis-benchmark "
        f"{redis.client_cpu:.0%}",
        f"{CONNECTIONS} kept-alive connections, {THREADS} load generator threads, one request "
        f"at a time per connection; wrk runs {figures.seconds} s, redis-benchmark "
        f"{figures.redis_requests:,} requests; medians over {len(runs['check'])} rounds",
        f"the answer: {figures.answer}; /v1/auth passed X-Auth-Subject: {figures.subject}",
        "the sidecar and its HTTP server run in a process of their own; wrk, redis-benchmark, "
        "the server, Redis and the broker share the machine's 2 cores; the 1-minute load "
        f"average was {figures.load[0]:.1f} before the rounds and {figures.load[1]:.1f} after",
    ]
    return [
        Report(
            result=f"{check.line()} at {CONNECTIONS} connections",
            compared=(
                f"Redis `GET`, same concurrency (redis-benchmark): {redis.line()}, "
                f"{redis.rate / check.rate:.1f}x the rate; `/v1/auth`: {auth.line()}"
            ),
            target=f"≥ 5,000 requests/s, p99 < 10 ms at {CONNECTIONS} connections",
            met=met,
            notes=notes,
        )
    ]
