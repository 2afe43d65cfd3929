"""``jwt-revocation topic ensure|check``: create the revocation topic, or check an existing one.

Both print the topic's name, partitions and retention as JSON; ``check`` fails (exit 2) with
one line saying how to fix a topic that a restarted sidecar could not trust.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from jwt_revocation.shared import RevocationSettings, TopicInfo, check_topic, ensure_topic

from ._command import EXIT_OK, Command, print_json
from ._options import duration


def _answer(
    args: argparse.Namespace,
    settings: RevocationSettings,
    action: Callable[..., TopicInfo],
    **options: Any,
) -> int:
    """Run ``ensure_topic`` or ``check_topic`` within ``--timeout``; print what the topic is."""
    info = action(
        settings.bootstrap_servers,
        settings.topic,
        max_token_lifetime=settings.max_token_lifetime,
        timeout=args.timeout,
        **options,
    )
    print_json(
        {"topic": info.name, "partitions": info.partitions, "retention_ms": info.retention_ms}
    )
    return EXIT_OK


def _ensure_arguments(parser: argparse.ArgumentParser, settings: RevocationSettings) -> None:
    parser.add_argument("--partitions", type=int, default=settings.partitions)
    parser.add_argument(
        "--retention-margin",
        default="1d",
        type=duration("--retention-margin"),
        help="retention beyond max-token-lifetime (default %(default)s)",
    )


def _ensure(args: argparse.Namespace, settings: RevocationSettings) -> int:
    return _answer(
        args,
        settings,
        ensure_topic,
        partitions=args.partitions,
        retention_margin=args.retention_margin,
    )


def _check(args: argparse.Namespace, settings: RevocationSettings) -> int:
    return _answer(args, settings, check_topic)


TOPIC = Command(
    "topic",
    "create or check the revocation topic",
    subcommands=(
        Command(
            "ensure",
            "create the topic if missing, then check it",
            run=_ensure,
            arguments=_ensure_arguments,
            timeout=10.0,
        ),
        Command("check", "check the topic's retention for a sidecar", run=_check, timeout=10.0),
    ),
)
