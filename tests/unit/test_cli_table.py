"""The command table with no broker: every command runs something, shared options once, log levels."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator

import pytest

from jwt_revocation.cli._command import Command
from jwt_revocation.cli._main import configure_logging
from jwt_revocation.cli._table import COMMANDS, build_parser, leaves
from jwt_revocation.shared import RevocationSettings

SHARED_OPTIONS = ("--timeout", "--key-env", "--algorithm", "--http", "--http-allow-remote")

REACHES_KAFKA = {
    ("publish", "logout"),
    ("publish", "password-change"),
    ("publish", "logout-everywhere"),
    ("publish", "account-disabled"),
    ("publish", "user-deleted"),
    ("publish", "session-logout"),
    ("publish", "revoke-all"),
    ("replay",),
    ("check",),
    ("sidecar",),
    ("redis-sink",),
    ("receive",),
    ("snapshot",),
    ("topic", "ensure"),
    ("topic", "check"),
}
"""The commands that take ``--timeout``. ``relay`` and ``demo`` reach Kafka too, but build
their clients themselves and do not honour one yet."""


def _subparser(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    for word in path:
        chooser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = chooser.choices[word]
    return parser


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions for option in action.option_strings]


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    return build_parser(RevocationSettings())


def test_every_command_runs_a_handler_or_chooses_a_subcommand() -> None:
    names = [command.name for command in COMMANDS]
    assert len(names) == len(set(names))
    found = dict(leaves())
    assert found
    for path, command in found.items():
        assert callable(command.run), path
        assert not command.subcommands, path
    with pytest.raises(ValueError, match="handler or subcommands"):
        Command("nothing", "runs nothing")


def test_parsing_selects_the_command_and_its_words(parser: argparse.ArgumentParser) -> None:
    for path, command in leaves():
        chosen = _subparser(parser, path)
        assert chosen.get_default("selected") is command
        assert chosen.get_default("command_path") == path
    args = parser.parse_args(["topic", "check", "--timeout", "3"])
    assert args.command_path == ("topic", "check")
    assert args.timeout == 3.0


def test_shared_options_appear_once_per_command(parser: argparse.ArgumentParser) -> None:
    with_timeout = set()
    for path, _command in leaves():
        options = _options(_subparser(parser, path))
        for option in SHARED_OPTIONS:
            assert options.count(option) <= 1, (path, option)
        if "--timeout" in options:
            with_timeout.add(path)
    assert with_timeout == REACHES_KAFKA


def test_one_shot_commands_give_up_after_10_s_by_default(parser: argparse.ArgumentParser) -> None:
    for words in (
        ["check", "--jti", "x"],
        ["topic", "check"],
        ["publish", "user-deleted", "--user", "u"],
    ):
        assert parser.parse_args(words).timeout == 10.0
    assert parser.parse_args(["sidecar"]).timeout == 30.0


@pytest.fixture
def levels() -> Iterator[None]:
    """Restore the package's and kafka-python's levels after a test."""
    loggers = [logging.getLogger(name) for name in ("jwt_revocation", "kafka")]
    saved = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, saved, strict=True):
        logger.setLevel(level)


QUIET, INFO, DEBUG = logging.CRITICAL, logging.INFO, logging.DEBUG


@pytest.mark.usefixtures("levels")
@pytest.mark.parametrize(
    ("name", "verbose", "expected"),
    [
        # One-shot commands: the package's warnings; kafka-python only with -vv.
        ("check", 0, (logging.WARNING, QUIET)),
        ("check", 1, (INFO, QUIET)),
        ("check", 2, (DEBUG, DEBUG)),
        ("check", 3, (DEBUG, DEBUG)),
        # Commands that run until stopped say what they do; -vv still reaches every logger.
        ("sidecar", 0, (INFO, QUIET)),
        ("sidecar", 1, (INFO, QUIET)),
        ("sidecar", 2, (DEBUG, DEBUG)),
        ("receive", 0, (INFO, QUIET)),
        ("receive", 2, (DEBUG, DEBUG)),
        ("redis-sink", 0, (INFO, QUIET)),
        ("relay", 0, (INFO, QUIET)),
    ],
)
def test_one_function_sets_the_package_and_kafka_python_levels(
    name: str, verbose: int, expected: tuple[int, int]
) -> None:
    configure_logging(verbose, dict(leaves())[(name,)])

    package = logging.getLogger("jwt_revocation.consumer._sidecar").getEffectiveLevel()
    kafka = logging.getLogger("kafka.net.manager").getEffectiveLevel()
    assert (package, kafka) == expected
