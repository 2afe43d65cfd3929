"""The ``jwt-revocation`` command: publish, replay, check, run a sidecar, manage the topic, demo.

Options default to ``JWT_REVOCATION_*`` environment variables (see ``RevocationSettings``);
flags win. The commands and their options are in ``_table``.

Exit status:

* 0: done; for ``check``, the token is accepted (not revoked).
* 1: ``check`` only: the token is revoked or rejected.
* 2: bad usage or an error, an unreachable Kafka included (one line on standard error).
* 3: the revocation state could not decide: not caught up within ``--timeout``, stale, failed
  (``status``: the sidecar is not ready).
* 130: interrupted.

Logs go to standard error. The package logs warnings, or info for the commands that run until
signalled (``sidecar``, ``redis-sink``, ``receive``, ``relay``); ``-v`` shows info, ``-vv``
debug, kafka-python's own logs included. Without ``-vv`` kafka-python is silent: what it
would say about an unreachable broker reaches the user as the one error line instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from kafka.errors import KafkaError
from pydantic import SecretStr, ValidationError

from jwt_revocation.shared import RevocationError, RevocationSettings, SidecarUnavailableError

from ._command import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_UNAVAILABLE,
    Command,
    say_error,
)
from ._table import build_parser

PACKAGE_LOGGER = "jwt_revocation"
KAFKA_LOGGER = "kafka"
"""kafka-python's loggers all sit under ``kafka``."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        settings = RevocationSettings()
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors(include_url=False)
        )
        print(f"jwt-revocation: invalid JWT_REVOCATION_* setting: {problems}", file=sys.stderr)
        return EXIT_ERROR
    args, layered = parse(argv, settings)
    command: Command = args.selected
    configure_logging(args.verbose, command)
    return _run(command, args, layered)


def parse(
    argv: Sequence[str] | None, settings: RevocationSettings
) -> tuple[argparse.Namespace, RevocationSettings]:
    """The arguments, and the settings with the global flags layered over them: what every
    command builds its options from (``SidecarOptions.from_settings(settings, **flags)``...)."""
    args = build_parser(settings).parse_args(argv)
    update: dict[str, Any] = {
        "bootstrap_servers": args.bootstrap_servers,
        "topic": args.topic,
        "max_token_lifetime": args.max_token_lifetime,
    }
    if args.redis_url:
        update["redis_url"] = SecretStr(args.redis_url)
    return args, settings.model_copy(update=update)


def _run(command: Command, args: argparse.Namespace, settings: RevocationSettings) -> int:
    handler = command.run
    if handler is None:  # the table selects only commands that run
        return say_error(args, "choose a subcommand")
    try:
        return handler(args, settings)
    except SidecarUnavailableError as err:
        say_error(args, str(err))
        return EXIT_UNAVAILABLE
    except (RevocationError, KafkaError) as err:
        return say_error(args, str(err))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def configure_logging(verbose: int, command: Command) -> None:
    """The one place that sets log levels: the package's and kafka-python's, from ``-v``."""
    if verbose >= 2:
        package = kafka = logging.DEBUG
    else:
        info = verbose == 1 or command.long_running
        package, kafka = (logging.INFO if info else logging.WARNING), logging.CRITICAL
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger(PACKAGE_LOGGER).setLevel(package)
    logging.getLogger(KAFKA_LOGGER).setLevel(kafka)
