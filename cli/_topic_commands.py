"""``jwt-revocation topic ensure|check``: create the revocation topic, or check an existing one.

Both print the topic's name, partitions, retention and replication as JSON, with ``warnings``
about what could lose acknowledged revocations (logged too); ``check`` fails (exit 2) with one
line saying how to fix a topic that a restarted sidecar could not trust, and, under
``JWT_REVOCATION_STRICT_REPLICATION``, one that a broker's loss could empty. ``ensure`` creates
the topic with 3 replicas and ``min.insync.replicas=2`` on three brokers or more
(``--replication-factor``, ``--min-insync-replicas``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from jwt_revocation.shared import (
    KafkaConnection,
    RevocationSettings,
    TopicInfo,
    check_topic,
    ensure_topic,
)

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
        connection=KafkaConnection.from_settings(settings),
        strict_replication=settings.strict_replication,
        **options,
    )
    print_json(
        {
            "topic": info.name,
            "partitions": info.partitions,
            "retention_ms": info.retention_ms,
            "replication_factor": info.replication_factor,
            "min_insync_replicas": info.min_insync_replicas,
            "brokers": info.brokers,
            "warnings": list(info.warnings),
        }
    )
    return EXIT_OK


def _ensure_arguments(parser: argparse.ArgumentParser, settings: RevocationSettings) -> None:
    parser.add_argument("--partitions", type=int, default=settings.partitions)
    parser.add_argument(
        "--retention-margin",
        default="1d",
        type=duration,
        help="retention beyond max-token-lifetime (default %(default)s)",
    )
    parser.add_argument(
        "--replication-factor",
        type=int,
        default=settings.replication_factor,
        help="replicas per partition [JWT_REVOCATION_REPLICATION_FACTOR; default 3, or every "
        "broker of a smaller cluster]",
    )
    parser.add_argument(
        "--min-insync-replicas",
        type=int,
        default=settings.min_insync_replicas,
        help="the topic's min.insync.replicas [JWT_REVOCATION_MIN_INSYNC_REPLICAS; default 2 "
        "with 3 replicas or more, else the broker's]",
    )


def _ensure(args: argparse.Namespace, settings: RevocationSettings) -> int:
    return _answer(
        args,
        settings,
        ensure_topic,
        partitions=args.partitions,
        retention_margin=args.retention_margin,
        replication_factor=args.replication_factor,
        min_insync_replicas=args.min_insync_replicas,
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
