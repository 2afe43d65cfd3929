"""The ``jwt-revocation`` command: publish, replay, check, run a sidecar, manage the topic, demo.

Options default to ``JWT_REVOCATION_*`` environment variables (see ``RevocationSettings``);
flags win. Exit status: 0 ok / not revoked, 1 revoked or rejected, 2 bad usage or error,
3 the revocation state could not decide (not caught up, stale).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import jwt
from pydantic import SecretStr, ValidationError

from jwt_revocation.consumer import (
    RedisBlocklistSink,
    RevocationSidecar,
    RevocationVerifier,
    SidecarHTTPServer,
    SidecarStatus,
)
from jwt_revocation.producer import Published, RevocationPublisher, SecurityEventReceiver
from jwt_revocation.shared import (
    ConfigurationError,
    RevocationError,
    RevocationSettings,
    SecurityEventVerifier,
    SidecarUnavailableError,
    TokenRevokedError,
    check_topic,
    ensure_topic,
    parse_duration,
)
from jwt_revocation.shared._http import parse_address

from ._replay import progress_bar, replay

logger = logging.getLogger("jwt_revocation.cli")

EXIT_OK, EXIT_REVOKED, EXIT_ERROR, EXIT_UNAVAILABLE = 0, 1, 2, 3


def _instant(text: str) -> float:
    """Seconds since the epoch, or an ISO 8601 datetime with a zone (``2026-01-01T00:00:00Z``)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not an instant: {text!r}") from err
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; add Z or +00:00")
    return parsed.timestamp()


def _parser(settings: RevocationSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jwt-revocation",
        description="Revoke JWTs everywhere at once, verified locally with no network call.",
    )
    parser.add_argument(
        "--bootstrap-servers",
        default=settings.bootstrap_servers,
        help="Kafka brokers [JWT_REVOCATION_BOOTSTRAP_SERVERS, default %(default)s]",
    )
    parser.add_argument(
        "--topic",
        default=settings.topic,
        help="revocation topic [JWT_REVOCATION_TOPIC, default %(default)s]",
    )
    parser.add_argument(
        "--max-token-lifetime",
        default=settings.max_token_lifetime,
        type=lambda v: parse_duration(v, name="--max-token-lifetime"),
        help="longest token lifetime, e.g. 15m, 1h [JWT_REVOCATION_MAX_TOKEN_LIFETIME]",
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="Redis for snapshots and the blocklist sink [JWT_REVOCATION_REDIS_URL]",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v for info logs, -vv for debug"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    publish = commands.add_parser("publish", help="publish one revocation event")
    publish.add_argument(
        "--issuer", default=settings.issuer, help="[JWT_REVOCATION_ISSUER, default %(default)s]"
    )
    events = publish.add_subparsers(dest="event", required=True, metavar="EVENT")
    logout = events.add_parser("logout", help="revoke one token until it expires")
    logout.add_argument("--jti", required=True)
    logout.add_argument("--user", required=True, help="the token's user id (sub)")
    logout.add_argument(
        "--expires-at", required=True, type=_instant, help="the token's exp (epoch or ISO 8601)"
    )
    for name, what in (
        ("password-change", "revoke every token of a user issued before --at"),
        ("logout-everywhere", "revoke every session of a user issued before --at"),
        ("account-disabled", "revoke every token of a disabled user issued before --at"),
        ("user-deleted", "revoke every token of a deleted user issued before --at"),
    ):
        event = events.add_parser(name, help=what)
        event.add_argument("--user", required=True)
        event.add_argument("--at", type=_instant, default=None, help="default: now")

    replay = commands.add_parser(
        "replay", help="read the topic into a state; print a summary and the entries"
    )
    replay.add_argument("--json", action="store_true", help="print JSON, without progress")
    window = replay.add_mutually_exclusive_group()
    window.add_argument(
        "--since",
        type=lambda v: parse_duration(v, name="--since"),
        help="read events of this last duration, e.g. 15m (default: a sidecar's window, "
        "max-token-lifetime + max-clock-skew)",
    )
    window.add_argument(
        "--from-beginning", action="store_true", help="read everything the topic holds"
    )
    replay.add_argument("--entries", action="store_true", help="also list every live entry")
    replay.add_argument("--timeout", type=float, default=120.0, help="seconds to catch up")

    check = commands.add_parser(
        "check", help="is this token / jti / user revoked? (exit 0 no, 1 yes)"
    )
    check.add_argument("--token", help="the token, or - to read it from standard input")
    check.add_argument("--jti")
    check.add_argument("--user")
    check.add_argument("--issued-at", type=_instant, help="with --user: the token's iat")
    check.add_argument(
        "--key-env",
        default="JWT_REVOCATION_VERIFY_KEY",
        help="environment variable holding the verification key (default %(default)s); "
        "without it a token's signature is not checked",
    )
    check.add_argument("--algorithm", action="append", help="accepted algorithm (default HS256)")
    check.add_argument("--json", action="store_true")
    check.add_argument("--timeout", type=float, default=120.0, help="seconds to catch up")

    sidecar = commands.add_parser(
        "sidecar", help="run a sidecar in the foreground (with --redis-url: snapshots too)"
    )
    sidecar.add_argument("--report-every", type=float, default=30.0, help="status log interval")
    sidecar.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve /healthz, /readyz, /metrics and POST /v1/check (loopback only by default)",
    )
    sidecar.add_argument(
        "--http-allow-remote",
        action="store_true",
        help="allow --http on a non-loopback address (put your own access control in front)",
    )
    sidecar.add_argument(
        "--key-env",
        default="JWT_REVOCATION_VERIFY_KEY",
        help="environment variable holding the key /v1/check verifies tokens with "
        "(default %(default)s); without it /v1/check takes claims only",
    )
    sidecar.add_argument("--algorithm", action="append", help="accepted algorithm (default HS256)")
    status = commands.add_parser(
        "status", help="print a running sidecar's status (from its --http endpoint)"
    )
    status.add_argument(
        "--url", default="http://127.0.0.1:8080", help="the sidecar's --http address"
    )
    sink = commands.add_parser(
        "redis-sink",
        help="keep the Redis blocklist current for services that cannot embed a sidecar",
    )
    sink.add_argument("--report-every", type=float, default=30.0, help="status log interval")
    receive = commands.add_parser(
        "receive",
        help="receive pushed Security Event Tokens (RFC 8935) and publish their revocations",
    )
    receive.add_argument(
        "--http",
        metavar="HOST:PORT",
        default="127.0.0.1:8081",
        help="where to listen (default %(default)s; loopback only unless allowed)",
    )
    receive.add_argument(
        "--http-allow-remote",
        action="store_true",
        help="allow a non-loopback address (terminate TLS in a proxy in front)",
    )
    receive.add_argument("--path", default="/v1/events", help="the push endpoint's path")
    snapshot = commands.add_parser("snapshot", help="replay the topic and write one snapshot now")
    snapshot.add_argument("--timeout", type=float, default=120.0, help="seconds to catch up")

    topic = commands.add_parser("topic", help="create or check the revocation topic")
    topic_commands = topic.add_subparsers(dest="topic_command", required=True, metavar="ACTION")
    ensure = topic_commands.add_parser("ensure", help="create the topic if missing, then check it")
    ensure.add_argument("--partitions", type=int, default=settings.partitions)
    ensure.add_argument(
        "--retention-margin",
        default="1d",
        type=lambda v: parse_duration(v, name="--retention-margin"),
        help="retention beyond max-token-lifetime (default %(default)s)",
    )
    topic_commands.add_parser("check", help="check the topic's retention for a sidecar")

    demo = commands.add_parser("demo", help="three services, one auth service, every revocation")
    demo.add_argument("--topic-name", default="jwt-revocation.demo", help="the demo's topic")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        settings = RevocationSettings()
    except ValidationError as err:
        print(f"jwt-revocation: invalid JWT_REVOCATION_* setting: {err}", file=sys.stderr)
        return EXIT_ERROR
    args = _parser(settings).parse_args(argv)
    _configure_logging(args.verbose)
    update: dict[str, Any] = {
        "bootstrap_servers": args.bootstrap_servers,
        "topic": args.topic,
        "max_token_lifetime": args.max_token_lifetime,
    }
    if args.redis_url:
        update["redis_url"] = SecretStr(args.redis_url)
    settings = settings.model_copy(update=update)
    handlers = {
        "publish": _publish,
        "replay": _replay,
        "check": _check,
        "sidecar": _sidecar,
        "redis-sink": _redis_sink,
        "status": _status,
        "snapshot": _snapshot,
        "receive": _receive,
        "topic": _topic,
        "demo": _demo,
    }
    try:
        return handlers[args.command](args, settings)
    except SidecarUnavailableError as err:
        print(f"jwt-revocation: {err}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except RevocationError as err:
        print(f"jwt-revocation: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr
    )
    # kafka-python is chatty at INFO; its warnings still show.
    logging.getLogger("kafka").setLevel(logging.DEBUG if verbose >= 3 else logging.WARNING)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _published(published: Published) -> dict[str, Any]:
    return {
        "event": published.event.model_dump(mode="json"),
        "partition": published.partition,
        "offset": published.offset,
    }


def _publish(args: argparse.Namespace, settings: RevocationSettings) -> int:
    settings = settings.model_copy(update={"issuer": args.issuer})
    with RevocationPublisher.from_settings(settings) as publisher:
        if args.event == "logout":
            result = publisher.logout(jti=args.jti, user_id=args.user, expires_at=args.expires_at)
        else:
            method = {
                "password-change": publisher.password_changed,
                "logout-everywhere": publisher.logout_everywhere,
                "account-disabled": publisher.account_disabled,
                "user-deleted": publisher.user_deleted,
            }[args.event]
            result = method(user_id=args.user, at=args.at)
    _print_json(_published(result))
    return EXIT_OK


def _started_sidecar(
    settings: RevocationSettings, timeout: float, **overrides: Any
) -> RevocationSidecar:
    sidecar = RevocationSidecar.from_settings(settings, name="jwt-revocation-cli", **overrides)
    try:
        sidecar.start(timeout=timeout)
    except BaseException:
        sidecar.stop()
        raise
    return sidecar


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _replay(args: argparse.Namespace, settings: RevocationSettings) -> int:
    since = (
        None
        if args.from_beginning
        else (
            args.since
            if args.since is not None
            else settings.max_token_lifetime + settings.max_clock_skew
        )
    )
    show_progress = not args.json and sys.stderr.isatty()
    result = replay(
        settings,
        since=since,
        progress=progress_bar() if show_progress else None,
        timeout=args.timeout,
    )
    summary = result.summary()
    window = "from the beginning" if since is None else f"since {since.total_seconds():.0f} s ago"
    snapshot = result.state.snapshot()
    if args.json:
        _print_json(
            {
                "topic": settings.topic,
                "window": window,
                "summary": summary,
                "state": {
                    "token_revoked": {j: _iso(e) for j, e in sorted(snapshot.jtis.items())},
                    "user_tokens_revoked": {
                        u: _iso(t) for u, t in sorted(snapshot.cutoffs.items())
                    },
                    "user_deleted": {u: _iso(t) for u, t in sorted(snapshot.deletions.items())},
                },
            }
        )
        return EXIT_OK
    rate = summary["events_per_s"]
    print(
        f"topic {settings.topic}, {window}: {summary['records']:,} records in "
        f"{summary['elapsed_s']:.2f} s" + (f" ({rate:,} events/s)" if rate else "")
    )
    print("events:  " + _counts(summary["events"]))
    print("skipped: " + _counts(summary["skipped"]))
    print("live:    " + _counts(summary["entries"]))
    if args.entries:
        for jti, exp in sorted(snapshot.jtis.items()):
            print(f"  token_revoked        jti={jti} until {_iso(exp)}")
        for user, at in sorted(snapshot.cutoffs.items()):
            print(f"  user_tokens_revoked  user={user} issued before {_iso(at)}")
        for user, at in sorted(snapshot.deletions.items()):
            print(f"  user_deleted         user={user} issued before {_iso(at)}")
    return EXIT_OK


def _counts(counts: dict[str, int]) -> str:
    shown = ", ".join(f"{kind} {n:,}" for kind, n in sorted(counts.items()) if n)
    return shown or "none"


def _redis_url(settings: RevocationSettings, command: str) -> str:
    """The Redis URL a command needs, or a ConfigurationError saying how to give it."""
    if settings.redis_url is None:
        raise ConfigurationError(
            f"{command} needs Redis: give --redis-url or JWT_REVOCATION_REDIS_URL"
        )
    return settings.redis_url.get_secret_value()


def _snapshot(args: argparse.Namespace, settings: RevocationSettings) -> int:
    _redis_url(settings, "snapshot")
    sidecar = _started_sidecar(settings, args.timeout, snapshot_interval=0)
    try:
        snapshot_id = sidecar.save_snapshot()
        stats = sidecar.stats()
    finally:
        sidecar.stop()
    _print_json(
        {
            "topic": settings.topic,
            "snapshot": snapshot_id,
            "entries": stats.entries,
            "offsets": {str(p): s.position for p, s in stats.partitions.items()},
        }
    )
    return EXIT_OK


def _check(args: argparse.Namespace, settings: RevocationSettings) -> int:
    if not (args.token or args.jti or args.user):
        print("jwt-revocation check: give --token, --jti or --user", file=sys.stderr)
        return EXIT_ERROR
    token = sys.stdin.readline().strip() if args.token == "-" else args.token  # noqa: S105 - "-" means stdin
    sidecar = _started_sidecar(settings, args.timeout)
    try:
        result = _decide(args, sidecar, token)
    finally:
        sidecar.stop()
    if args.json:
        _print_json(result)
    else:
        print(result["verdict"] + (f" ({result['reason']})" if result.get("reason") else ""))
    return EXIT_REVOKED if result["verdict"] != "accepted" else EXIT_OK


def _decide(
    args: argparse.Namespace, sidecar: RevocationSidecar, token: str | None
) -> dict[str, Any]:
    key = os.environ.get(args.key_env)
    verifier = RevocationVerifier(
        sidecar, key=key or "", algorithms=args.algorithm or ["HS256"], leeway=0
    )
    if token is None:
        reason = verifier.is_revoked(jti=args.jti, user_id=args.user, issued_at=args.issued_at)
        return {"verdict": "revoked" if reason else "accepted", "reason": reason}
    try:
        if key:
            claims = verifier.verify(token)
        else:
            claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
            verifier.check_claims(claims)
    except TokenRevokedError as err:
        return {"verdict": "revoked", "reason": err.reason, "signature_checked": bool(key)}
    except jwt.InvalidTokenError as err:
        return {"verdict": "rejected", "reason": type(err).__name__, "detail": str(err)}
    return {
        "verdict": "accepted",
        "signature_checked": bool(key),
        "jti": claims.get("jti"),
        "sub": claims.get("sub"),
    }


def _status(args: argparse.Namespace, settings: RevocationSettings) -> int:
    url = args.url.rstrip("/") + "/v1/status"
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"--url must be an http:// or https:// address; got {args.url!r}")
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - checked above
            body = response.read()
    except urllib.error.HTTPError as err:
        body = err.read()
    except OSError as err:
        print(f"jwt-revocation status: cannot reach {url}: {err}", file=sys.stderr)
        return EXIT_ERROR
    stats = json.loads(body)
    _print_json(stats)
    return EXIT_OK if stats.get("ready") else EXIT_UNAVAILABLE


def _stop_on_signals() -> threading.Event:
    """An event that SIGINT or SIGTERM sets: the foreground commands run until it is set."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _redis_sink(args: argparse.Namespace, settings: RevocationSettings) -> int:
    sink = RedisBlocklistSink(
        _redis_url(settings, "redis-sink"),
        prefix=settings.redis_prefix,
        max_token_lifetime=settings.max_token_lifetime,
        max_clock_skew=settings.max_clock_skew,
    )
    return _sidecar(args, settings, name="jwt-revocation-redis-sink", mirror=sink)


def _sidecar(
    args: argparse.Namespace,
    settings: RevocationSettings,
    name: str = "jwt-revocation-sidecar",
    **overrides: Any,
) -> int:
    stop = _stop_on_signals()
    sidecar = RevocationSidecar.from_settings(settings, name=name, **overrides)
    logging.getLogger("jwt_revocation").setLevel(logging.INFO)
    server = _http_server(args, sidecar) if getattr(args, "http", None) else None
    try:
        if server is not None:
            server.start()
            print("http listening on {}:{}".format(*server.address), flush=True)
        while not _caught_up(sidecar, stop):
            logger.warning("sidecar still loading: %s", sidecar.stats().detail)
        if stop.is_set():
            return EXIT_OK
        print(f"sidecar caught up with {settings.topic}: {sidecar.state.counts()}", flush=True)
        last: SidecarStatus | None = None
        next_report = time.monotonic()
        while not stop.wait(1.0):
            stats = sidecar.stats()
            if stats.status is not last or time.monotonic() >= next_report:
                level = logging.INFO if stats.ready else logging.ERROR
                logger.log(level, "sidecar status %s", json.dumps(stats.as_dict(), sort_keys=True))
                last = stats.status
                next_report = time.monotonic() + args.report_every
    finally:
        if server is not None:
            server.stop()
        sidecar.stop()
    return EXIT_OK


def _receive(args: argparse.Namespace, settings: RevocationSettings) -> int:
    stop = _stop_on_signals()
    verifier = SecurityEventVerifier.from_settings(settings)
    host, port = parse_address(args.http)
    logging.getLogger("jwt_revocation").setLevel(logging.INFO)
    token = settings.receiver_token
    with RevocationPublisher.from_settings(settings) as publisher:
        receiver = SecurityEventReceiver(
            publisher,
            verifier,
            max_token_lifetime=settings.max_token_lifetime,
            host=host,
            port=port,
            path=args.path,
            auth_token=None if token is None else token.get_secret_value(),
            allow_remote=args.http_allow_remote,
        )
        receiver.start()
        print("receiving SETs on http://{}:{}{}".format(*receiver.address, args.path), flush=True)
        try:
            stop.wait()
        finally:
            receiver.stop()
            logger.info("receiver stopped counts=%s", dict(receiver.counts))
    return EXIT_OK


def _http_server(args: argparse.Namespace, sidecar: RevocationSidecar) -> SidecarHTTPServer:
    host, port = parse_address(args.http)
    key = os.environ.get(args.key_env)
    verifier = RevocationVerifier(sidecar, key=key or "", algorithms=args.algorithm or ["HS256"])
    return SidecarHTTPServer(
        sidecar,
        verifier,
        host=host,
        port=port,
        verify_tokens=bool(key),
        allow_remote=args.http_allow_remote,
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


def _topic(args: argparse.Namespace, settings: RevocationSettings) -> int:
    if args.topic_command == "ensure":
        info = ensure_topic(
            settings.bootstrap_servers,
            settings.topic,
            max_token_lifetime=settings.max_token_lifetime,
            partitions=args.partitions,
            retention_margin=args.retention_margin,
        )
    else:
        info = check_topic(
            settings.bootstrap_servers,
            settings.topic,
            max_token_lifetime=settings.max_token_lifetime,
        )
    _print_json(
        {"topic": info.name, "partitions": info.partitions, "retention_ms": info.retention_ms}
    )
    return EXIT_OK


def _demo(args: argparse.Namespace, settings: RevocationSettings) -> int:
    from ._demo import run_demo

    return run_demo(settings.model_copy(update={"topic": args.topic_name}))
