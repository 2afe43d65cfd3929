"""What a command of the table is, and what every handler shares.

A :class:`Command` holds one command's name, help, arguments and handler (or, for a group such
as ``topic``, its subcommands), whether it reaches Kafka (then the table gives it ``--timeout``
with the command's default) and whether it runs until signalled (then its own logs show at
INFO without ``-v``). Handlers take the parsed arguments and the settings and return an exit
status; a :class:`~jwt_revocation.shared.RevocationError` they raise becomes one line on
standard error (see ``_main``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jwt_revocation.shared import ConfigurationError, RevocationSettings

EXIT_OK, EXIT_REVOKED, EXIT_ERROR, EXIT_UNAVAILABLE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace, RevocationSettings], int]
"""Runs a command; returns its exit status."""
Arguments = Callable[[argparse.ArgumentParser, RevocationSettings], None]
"""Adds a command's own arguments; the settings give defaults taken from the environment."""
TimeoutDefault = float | Callable[[RevocationSettings], float]
"""``--timeout``'s default in seconds, or how to read it from the settings."""

START_TIMEOUT = 30.0
"""Seconds a foreground command waits for Kafka at start, as kafka-python itself does."""


@dataclass(frozen=True)
class Command:
    """One command of the table: its arguments and its handler, or its subcommands."""

    name: str
    help: str
    run: Handler | None = None
    arguments: Arguments | None = None
    subcommands: tuple[Command, ...] = ()
    subcommand_metavar: str = "ACTION"
    timeout: TimeoutDefault | None = None
    """Set for a command that reaches Kafka: the table gives it ``--timeout`` with this default."""
    timeout_help: str = "seconds to wait for Kafka before giving up"
    long_running: bool = False
    """Runs until SIGINT or SIGTERM: the package's logs show at INFO without ``-v``."""

    def __post_init__(self) -> None:
        if (self.run is None) == (not self.subcommands):
            raise ValueError(f"command {self.name!r} needs a handler or subcommands, not both")


def foreground(name: str, help: str, run: Handler, arguments: Arguments | None = None) -> Command:
    """A command that runs until SIGINT or SIGTERM; ``--timeout`` bounds reaching Kafka at start."""
    return Command(
        name,
        help,
        run=run,
        arguments=arguments,
        timeout=START_TIMEOUT,
        timeout_help="seconds to reach Kafka at start",
        long_running=True,
    )


def parser_only(add: Callable[[argparse.ArgumentParser], None]) -> Arguments:
    """An :data:`Arguments` from a function that needs no settings."""
    return lambda parser, _settings: add(parser)


def say_error(args: argparse.Namespace, message: str) -> int:
    """Print ``jwt-revocation COMMAND: message`` as one line on standard error; return 2."""
    name = " ".join(["jwt-revocation", *getattr(args, "command_path", ())])
    print(f"{name}: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_ERROR


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON with sorted keys."""
    print(json.dumps(value, indent=2, sort_keys=True))


def redis_url(settings: RevocationSettings, command: str) -> str:
    """The Redis URL a command needs, or a ConfigurationError saying how to give it."""
    if settings.redis_url is None:
        raise ConfigurationError(
            f"{command} needs Redis: give --redis-url or JWT_REVOCATION_REDIS_URL"
        )
    return settings.redis_url.get_secret_value()


def stop_on_signals() -> threading.Event:
    """An event that SIGINT or SIGTERM sets: the foreground commands run until it is set."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop
