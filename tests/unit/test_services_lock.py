"""The lock test sessions share a killable service by (bench.secured.services_lock).

Who waits is read from /proc/locks, where the kernel lists each process's blocked flock
requests ("->" lines), so no test guesses with a sleep.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from bench.secured import services_lock
from tests.support import wait_for


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("JWT_REVOCATION_SERVICES_DIR", str(tmp_path))
    return tmp_path


def _waiting_on(path: Path) -> int:
    """How many flock requests on ``path`` the kernel has blocked."""
    inode = f":{os.stat(path).st_ino}"
    blocked = 0
    for line in Path("/proc/locks").read_text(encoding="ascii").splitlines():
        fields = line.split()
        if "->" in fields and "FLOCK" in fields and any(f.endswith(inode) for f in fields):
            blocked += 1
    return blocked


class _Taker(threading.Thread):
    """Takes the lock in a thread, notes when it holds it, holds it until released."""

    def __init__(self, name: str, order: list[str], *, exclusive: bool) -> None:
        super().__init__(name=name, daemon=True)
        self.order = order
        self.exclusive = exclusive
        self.holds = threading.Event()
        self.release = threading.Event()

    def run(self) -> None:
        with services_lock("probe", exclusive=self.exclusive):
            self.order.append(self.name)
            self.holds.set()
            self.release.wait(30)

    def begin(self, blocked_on: Path | None = None) -> None:
        """Start, and return once it holds the lock or (``blocked_on``) waits for that file."""
        self.start()
        if blocked_on is None:
            assert self.holds.wait(10), f"{self.name} was not granted the lock"
        else:
            wait_for(lambda: _waiting_on(blocked_on) == 1)
            assert not self.holds.is_set()

    def end(self) -> None:
        self.release.set()
        self.join(10)


def test_an_exclusive_taker_waits_for_the_shared_holders(folder: Path) -> None:
    order: list[str] = []
    with services_lock("probe", exclusive=False):
        second = _Taker("second-share", order, exclusive=False)
        second.begin()  # shares are held together
        fault = _Taker("fault", order, exclusive=True)
        fault.begin(blocked_on=folder / "probe.lock")
        second.end()
        assert _waiting_on(folder / "probe.lock") == 1, "one share is still held"
    assert fault.holds.wait(10)
    fault.end()
    assert order == ["second-share", "fault"]


def test_a_waiting_exclusive_taker_goes_before_later_shared_takers(folder: Path) -> None:
    order: list[str] = []
    with services_lock("probe", exclusive=False):
        fault = _Taker("fault", order, exclusive=True)
        fault.begin(blocked_on=folder / "probe.lock")
        later = _Taker("later-share", order, exclusive=False)
        # Without the turn lock this share would be granted now, beside the first one.
        later.begin(blocked_on=folder / "probe.turn.lock")
    assert fault.holds.wait(10)
    assert _waiting_on(folder / "probe.turn.lock") == 1, "the later share waits for the fault"
    fault.end()
    assert later.holds.wait(10)
    later.end()
    assert order == ["fault", "later-share"]
