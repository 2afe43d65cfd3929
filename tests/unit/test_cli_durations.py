"""Every duration option of the command line says the accepted forms when given a wrong one.

``--poll-interval '1 hour'`` used to say ``invalid <lambda> value``. The options are found by
walking the whole parser, so an option added later with a lambda type fails here too.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from jwt_revocation.cli._main import main
from jwt_revocation.cli._options import duration, seconds
from jwt_revocation.cli._table import build_parser
from jwt_revocation.shared import RevocationSettings


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))
        else:
            yield path, action


ACTIONS = list(_walk(build_parser(RevocationSettings())))
DURATION_OPTIONS = [
    (path, action.option_strings[-1])
    for path, action in ACTIONS
    if action.type in (duration, seconds)
]


def test_no_option_has_a_type_that_argparse_would_call_lambda() -> None:
    named = {
        getattr(action.type, "__name__", "?") for _, action in ACTIONS if action.type is not None
    }

    assert "<lambda>" not in named
    assert len(DURATION_OPTIONS) >= 7  # --timeout of each command, --since, --retention...


@pytest.mark.parametrize(
    ("path", "flag"), DURATION_OPTIONS, ids=[" ".join((*p, f)) for p, f in DURATION_OPTIONS]
)
def test_a_wrong_duration_names_the_option_and_the_accepted_forms(
    path: tuple[str, ...], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [flag, "1 hour", *path] if not path else [*path, flag, "1 hour"]

    with pytest.raises(SystemExit) as exited:
        main(argv)

    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exited.value.code == 2
    assert f"argument {flag}: the value must be a duration" in error
    assert "ms, s, m, h, d" in error
    assert "'1 hour'" in error


@pytest.mark.parametrize(("text", "expected"), [("90", 90.0), ("500ms", 0.5), ("2m", 120.0)])
def test_a_right_duration_is_read_in_every_form(text: str, expected: float) -> None:
    assert seconds(text) == expected
    assert duration(text).total_seconds() == expected
