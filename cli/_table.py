"""The command table: every ``jwt-revocation`` command, registered once, and the parser built from it.

A command is a :class:`~._command.Command` defined beside its handler (``_publish``, ``_check``,
``_replay_commands``, ``_sidecar_commands``, ``_topic_commands``, ``_outbox``); adding one means
adding it to :data:`COMMANDS`. :func:`build_parser` gives each command its own arguments, the
shared ``--timeout`` when it reaches Kafka, and the global options; parsing leaves the chosen
command in ``args.selected`` and its words in ``args.command_path``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from jwt_revocation.shared import RevocationSettings

from ._check import CHECK
from ._command import Command, parser_only
from ._options import add_timeout, bootstrap_servers, duration, topic_name
from ._outbox import add_outbox_init_arguments, add_relay_arguments, run_outbox_init, run_relay
from ._publish import PUBLISH, RECEIVE
from ._replay_commands import REPLAY, SNAPSHOT
from ._sidecar_commands import REDIS_SINK, SIDECAR, STATUS
from ._topic_commands import TOPIC


def _demo_arguments(parser: argparse.ArgumentParser, _settings: RevocationSettings) -> None:
    parser.add_argument("--topic-name", default="jwt-revocation.demo", help="the demo's topic")
    parser.add_argument(
        "--keycloak",
        nargs="?",
        const="http://127.0.0.1:8180",
        metavar="URL",
        help="the same story with Keycloak as the identity provider (default URL %(const)s, "
        "admin/admin: scripts/services.sh keycloak-start)",
    )


def _demo(args: argparse.Namespace, settings: RevocationSettings) -> int:
    settings = settings.model_copy(update={"topic": args.topic_name})
    if args.keycloak is not None:
        from ._demo_keycloak import run_keycloak_demo

        return run_keycloak_demo(settings, args.keycloak)
    from ._demo import run_demo

    return run_demo(settings)


DEMO = Command(
    "demo",
    "three services, one auth service, every revocation",
    run=_demo,
    arguments=_demo_arguments,
)

OUTBOX = Command(
    "outbox",
    "the transactional outbox of revocations (see relay)",
    subcommands=(
        Command(
            "init",
            "create the outbox table (or print its DDL)",
            run=run_outbox_init,
            arguments=parser_only(add_outbox_init_arguments),
        ),
    ),
)

RELAY = Command(
    "relay",
    "publish committed outbox rows until SIGINT/SIGTERM",
    run=run_relay,
    arguments=parser_only(add_relay_arguments),
    long_running=True,
)

COMMANDS: tuple[Command, ...] = (
    PUBLISH,
    REPLAY,
    CHECK,
    SIDECAR,
    STATUS,
    REDIS_SINK,
    RECEIVE,
    SNAPSHOT,
    TOPIC,
    OUTBOX,
    RELAY,
    DEMO,
)
"""Every command, in the order ``--help`` lists them."""


def leaves(
    commands: tuple[Command, ...] = COMMANDS, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Command]]:
    """Every command that runs, with the words that choose it (``("topic", "check")``)."""
    for command in commands:
        if command.subcommands:
            yield from leaves(command.subcommands, (*path, command.name))
        else:
            yield (*path, command.name), command


def build_parser(settings: RevocationSettings) -> argparse.ArgumentParser:
    """The whole command line; the settings give the defaults read from the environment."""
    parser = argparse.ArgumentParser(
        prog="jwt-revocation",
        description="Revoke JWTs everywhere at once, verified locally with no network call.",
    )
    parser.add_argument(
        "--bootstrap-servers",
        default=settings.bootstrap_servers,
        type=bootstrap_servers,
        help="Kafka brokers [JWT_REVOCATION_BOOTSTRAP_SERVERS, default %(default)s]",
    )
    parser.add_argument(
        "--topic",
        default=settings.topic,
        type=topic_name,
        help="revocation topic [JWT_REVOCATION_TOPIC, default %(default)s]",
    )
    parser.add_argument(
        "--max-token-lifetime",
        default=settings.max_token_lifetime,
        type=duration,
        help="longest token lifetime, e.g. 15m, 1h [JWT_REVOCATION_MAX_TOKEN_LIFETIME]",
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="Redis for snapshots and the blocklist sink [JWT_REVOCATION_REDIS_URL]",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v for info logs, -vv for debug logs (kafka-python's too)",
    )
    _add_commands(parser, COMMANDS, settings, (), "COMMAND")
    return parser


def _add_commands(
    parser: argparse.ArgumentParser,
    commands: tuple[Command, ...],
    settings: RevocationSettings,
    path: tuple[str, ...],
    metavar: str,
) -> None:
    chosen = parser.add_subparsers(
        dest="_".join(("command", *path)), required=True, metavar=metavar
    )
    for command in commands:
        sub = chosen.add_parser(command.name, help=command.help, description=command.help)
        if command.arguments is not None:
            command.arguments(sub, settings)
        if command.subcommands:
            words = (*path, command.name)
            _add_commands(sub, command.subcommands, settings, words, command.subcommand_metavar)
            continue
        if command.timeout is not None:
            default = command.timeout
            seconds = default(settings) if callable(default) else default
            add_timeout(sub, default=seconds, what=command.timeout_help)
        sub.set_defaults(selected=command, command_path=(*path, command.name))
