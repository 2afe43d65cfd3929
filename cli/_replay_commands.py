"""The commands that read the whole topic once: ``replay`` shows it, ``snapshot`` stores it.

``replay`` prints a summary (events by type, skipped records, live entries, the rate) and, with
``--entries``, every live entry; with ``--json``, all of it as JSON. Its reading is
``_replay.replay``. ``snapshot`` catches a sidecar up and writes one snapshot to Redis. Both
give up on an unreachable broker within 10 s (``_kafka.REACH_WITHIN``; ``replay``'s reading
bounds it alike) and on the whole read after ``--timeout``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from jwt_revocation.shared import RevocationSettings

from ._command import EXIT_OK, Command, print_json, redis_url
from ._kafka import started_sidecar
from ._options import duration
from ._replay import ReplayResult, progress_bar, replay


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _replay_arguments(parser: argparse.ArgumentParser, _settings: RevocationSettings) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON, without progress")
    window = parser.add_mutually_exclusive_group()
    window.add_argument(
        "--since",
        type=duration,
        help="read events of this last duration, e.g. 15m (default: a sidecar's window, "
        "max-token-lifetime + max-clock-skew)",
    )
    window.add_argument(
        "--from-beginning", action="store_true", help="read everything the topic holds"
    )
    parser.add_argument("--entries", action="store_true", help="also list every live entry")


def _replay(args: argparse.Namespace, settings: RevocationSettings) -> int:
    since = args.since
    if since is None and not args.from_beginning:
        since = settings.max_token_lifetime + settings.max_clock_skew
    show_progress = not args.json and sys.stderr.isatty()
    result = replay(
        settings,
        since=since,
        progress=progress_bar() if show_progress else None,
        timeout=args.timeout,
    )
    window = "from the beginning" if since is None else f"since {since.total_seconds():.0f} s ago"
    if args.json:
        _print_replay_json(settings, window, result)
    else:
        _print_replay_text(settings, window, result, entries=args.entries)
    return EXIT_OK


def _print_replay_json(settings: RevocationSettings, window: str, result: ReplayResult) -> None:
    snapshot = result.state.snapshot()
    print_json(
        {
            "topic": settings.topic,
            "window": window,
            "summary": result.summary(),
            "state": {
                "token_revoked": {j: _iso(e) for j, e in sorted(snapshot.jtis.items())},
                "user_tokens_revoked": {u: _iso(t) for u, t in sorted(snapshot.cutoffs.items())},
                "user_deleted": {u: _iso(t) for u, t in sorted(snapshot.deletions.items())},
            },
        }
    )


def _print_replay_text(
    settings: RevocationSettings, window: str, result: ReplayResult, *, entries: bool
) -> None:
    summary = result.summary()
    rate = summary["events_per_s"]
    print(
        f"topic {settings.topic}, {window}: {summary['records']:,} records in "
        f"{summary['elapsed_s']:.2f} s" + (f" ({rate:,} events/s)" if rate else "")
    )
    print("events:  " + _counts(summary["events"]))
    print("skipped: " + _counts(summary["skipped"]))
    print("live:    " + _counts(summary["entries"]))
    if not entries:
        return
    snapshot = result.state.snapshot()
    for jti, exp in sorted(snapshot.jtis.items()):
        print(f"  token_revoked        jti={jti} until {_iso(exp)}")
    for user, at in sorted(snapshot.cutoffs.items()):
        print(f"  user_tokens_revoked  user={user} issued before {_iso(at)}")
    for user, at in sorted(snapshot.deletions.items()):
        print(f"  user_deleted         user={user} issued before {_iso(at)}")


def _counts(counts: dict[str, int]) -> str:
    shown = ", ".join(f"{kind} {n:,}" for kind, n in sorted(counts.items()) if n)
    return shown or "none"


REPLAY = Command(
    "replay",
    "read the topic into a state; print a summary and the entries",
    run=_replay,
    arguments=_replay_arguments,
    timeout=120.0,
    timeout_help="seconds to read the topic up to its end offsets",
)


def _snapshot(args: argparse.Namespace, settings: RevocationSettings) -> int:
    redis_url(settings, "snapshot")
    with started_sidecar(settings, args.timeout, snapshot_interval=0) as sidecar:
        snapshot_id = sidecar.save_snapshot()
        stats = sidecar.stats()
    print_json(
        {
            "topic": settings.topic,
            "snapshot": snapshot_id,
            "entries": stats.entries,
            "offsets": {str(p): s.position for p, s in stats.partitions.items()},
        }
    )
    return EXIT_OK


SNAPSHOT = Command(
    "snapshot",
    "replay the topic and write one snapshot now",
    run=_snapshot,
    timeout=120.0,
    timeout_help="seconds to read the topic up to its end offsets",
)
