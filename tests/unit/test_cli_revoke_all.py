"""``publish revoke-all`` asks before it logs everyone out: no broker is reached unless the
operator typed the confirmation, or said ``--yes``."""

from __future__ import annotations

import io
from typing import Any

import pytest

from jwt_revocation.cli import _publish
from jwt_revocation.cli._main import main


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Sent:
    """Stands in for the publisher: records revoke_all's arguments."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __enter__(self) -> _Sent:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def revoke_all(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        raise SystemExit(0)  # stop before printing a Published


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> _Sent:
    fake = _Sent()
    monkeypatch.setattr(_publish, "_publisher", lambda args, settings: fake)
    return fake


def test_without_a_terminal_it_refuses_unless_yes(
    sent: _Sent, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("revoke all\n"))  # a pipe, not an operator

    assert main(["publish", "revoke-all"]) == 2
    assert "add --yes" in capsys.readouterr().err
    assert sent.calls == []
    with pytest.raises(SystemExit):
        main(["publish", "revoke-all", "--yes", "--token-issuer", "https://a"])
    assert sent.calls[0]["token_issuer"] == "https://a"


@pytest.mark.parametrize(
    ("typed", "published"), [("revoke all\n", True), ("y\n", False), ("", False)]
)
def test_on_a_terminal_it_publishes_only_once_confirmed(
    sent: _Sent,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    typed: str,
    published: bool,
) -> None:
    monkeypatch.setattr("sys.stdin", _Terminal(typed))

    if published:
        with pytest.raises(SystemExit):
            main(["publish", "revoke-all", "--at", "1800000000"])
        assert sent.calls[0]["token_issuer"] is None
        assert sent.calls[0]["at"].timestamp() == 1_800_000_000
    else:
        assert main(["publish", "revoke-all"]) == 2
        assert sent.calls == []
        assert "nothing published" in capsys.readouterr().err
