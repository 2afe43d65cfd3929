"""The commands that run a sidecar in the foreground, and the one that asks a running sidecar.

``sidecar`` (optionally serving HTTP) and ``redis-sink`` (a sidecar mirroring into the Redis
blocklist) run until SIGINT or SIGTERM: they wait for the topic while it loads, say once when
they caught up, then log their status when it changes and every ``--report-every`` seconds.
``--timeout`` bounds only the start: once running, a sidecar retries Kafka on its own.
``status`` prints a running ``--http`` sidecar's status; exit 3 when it is not ready.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from jwt_revocation.consumer import (
    RedisBlocklistSink,
    RevocationSidecar,
    SidecarHTTPServer,
    SidecarStatus,
    SidecarUnavailableError,
)
from jwt_revocation.shared import ConfigurationError, HTTPLimits, RevocationSettings
from jwt_revocation.shared._http import parse_address

from ._command import (
    EXIT_OK,
    EXIT_UNAVAILABLE,
    Command,
    foreground,
    parser_only,
    print_json,
    redis_url,
    say_error,
    stop_on_signals,
)
from ._kafka import checked_sidecar
from ._options import add_http, add_verify_key, seconds, verifier_for

logger = logging.getLogger("jwt_revocation.cli")


def _report_every(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--report-every",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="status log interval",
    )


def _sidecar_arguments(parser: argparse.ArgumentParser, settings: RevocationSettings) -> None:
    _report_every(parser)
    add_http(
        parser,
        default=None,
        listen="serve /healthz, /readyz, /metrics and POST /v1/check (loopback only by default)",
        remote="allow --http on a non-loopback address (put your own access control in front)",
    )
    add_verify_key(
        parser,
        used_for="/v1/check verifies tokens with",
        without="/v1/check takes claims only",
    )
    parser.add_argument(
        "--shared-path",
        default=settings.shared_path,
        metavar="PATH",
        help="be the host writer: keep the revocation state in this file (e.g. in /dev/shm) "
        "for every worker to read through SharedRevocations (JWT_REVOCATION_SHARED_PATH)",
    )
    parser.add_argument(
        "--shared-group",
        default=settings.shared_group,
        metavar="GROUP",
        help="the group that may read the shared state file, mode 0640 "
        "(JWT_REVOCATION_SHARED_GROUP; default: mode 0600)",
    )


def sidecar_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The ``sidecar`` command's flags that are :class:`SidecarOptions` (their defaults are the
    settings): layered over the settings by ``from_settings``."""
    return {"shared_path": args.shared_path, "shared_group": args.shared_group}


def _sidecar(args: argparse.Namespace, settings: RevocationSettings) -> int:
    stop = stop_on_signals()
    sidecar = checked_sidecar(
        settings, reach=args.timeout, name="jwt-revocation-sidecar", **sidecar_flags(args)
    )
    return _serve(args, settings, sidecar, stop)


def _redis_sink(args: argparse.Namespace, settings: RevocationSettings) -> int:
    stop = stop_on_signals()
    sink = RedisBlocklistSink(
        redis_url(settings, "redis-sink"),
        prefix=settings.redis_prefix,
        max_token_lifetime=settings.max_token_lifetime,
        max_clock_skew=settings.max_clock_skew,
    )
    sidecar = checked_sidecar(
        settings, reach=args.timeout, name="jwt-revocation-redis-sink", mirror=sink
    )
    return _serve(args, settings, sidecar, stop)


def _serve(
    args: argparse.Namespace,
    settings: RevocationSettings,
    sidecar: RevocationSidecar,
    stop: threading.Event,
) -> int:
    server = _http_server(args, sidecar, settings) if getattr(args, "http", None) else None
    try:
        if server is not None:
            server.start()
            print("http listening on {}:{}".format(*server.address), flush=True)
        while not _caught_up(sidecar, stop):
            logger.warning("sidecar still loading: %s", sidecar.stats().detail)
        if stop.is_set():
            return EXIT_OK
        print(f"sidecar caught up with {settings.topic}: {sidecar.state.counts()}", flush=True)
        _report(sidecar, stop, every=args.report_every)
    finally:
        if server is not None:
            server.stop()
        sidecar.stop()
    return EXIT_OK


def _report(sidecar: RevocationSidecar, stop: threading.Event, *, every: float) -> None:
    """Log the status when it changes and every ``every`` seconds, until ``stop`` is set."""
    last: SidecarStatus | None = None
    next_report = time.monotonic()
    while not stop.wait(1.0):
        stats = sidecar.stats()
        if stats.status is not last or time.monotonic() >= next_report:
            level = logging.INFO if stats.ready else logging.ERROR
            logger.log(level, "sidecar status %s", json.dumps(stats.as_dict(), sort_keys=True))
            last = stats.status
            next_report = time.monotonic() + every


def _http_server(
    args: argparse.Namespace, sidecar: RevocationSidecar, settings: RevocationSettings
) -> SidecarHTTPServer:
    host, port = parse_address(args.http)
    verifier, signed = verifier_for(args, sidecar, settings)
    if signed and not verifier.load_keys():
        logger.warning("the key set is not at hand yet; /v1/check answers 503 until it is")
    token = settings.http_token
    return SidecarHTTPServer(
        sidecar,
        verifier,
        host=host,
        port=port,
        verify_tokens=signed,
        allow_remote=args.http_allow_remote,
        auth_token=None if token is None else token.get_secret_value(),
        limits=HTTPLimits.from_settings(settings),
    )


def _caught_up(sidecar: RevocationSidecar, stop: threading.Event) -> bool:
    """Start (or keep waiting for) the sidecar for up to 10 s; True once caught up or told to stop."""
    try:
        sidecar.start(timeout=10.0)
    except SidecarUnavailableError as err:
        if err.reason != "loading":
            raise
        return stop.is_set()
    return True


SIDECAR = foreground(
    "sidecar",
    "run a sidecar in the foreground (with --redis-url: snapshots too)",
    _sidecar,
    _sidecar_arguments,
)

REDIS_SINK = foreground(
    "redis-sink",
    "keep the Redis blocklist current for services that cannot embed a sidecar",
    _redis_sink,
    parser_only(_report_every),
)


def _status_arguments(parser: argparse.ArgumentParser, _settings: RevocationSettings) -> None:
    parser.add_argument(
        "--url", default="http://127.0.0.1:8080", help="the sidecar's --http address"
    )


def _status(args: argparse.Namespace, _settings: RevocationSettings) -> int:
    url = args.url.rstrip("/") + "/v1/status"
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"--url must be an http:// or https:// address; got {args.url!r}")
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - checked above
            body = response.read()
    except urllib.error.HTTPError as err:
        body = err.read()
    except OSError as err:
        return say_error(args, f"cannot reach {url}: {err}")
    stats = json.loads(body)
    print_json(stats)
    return EXIT_OK if stats.get("ready") else EXIT_UNAVAILABLE


STATUS = Command(
    "status",
    "print a running sidecar's status (from its --http endpoint)",
    run=_status,
    arguments=_status_arguments,
)
