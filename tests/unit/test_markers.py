"""``-m integration`` selects the tests under tests/integration, and only those."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ["tests/integration/test_services_script.py", "tests/unit/test_services_lock.py"]
"""A module of each kind, small enough to collect in a few seconds."""


def _collected(expression: str) -> list[str]:
    collect = ["--collect-only", "-q", "-p", "no:cacheprovider", "-m", expression]
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", *collect, *SAMPLE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    return [line for line in listed.stdout.splitlines() if "::" in line]


def test_the_integration_marker_selects_the_integration_tests_alone() -> None:
    integration = _collected("integration")
    unit = _collected("not integration")

    assert integration
    assert all(test.startswith("tests/integration/") for test in integration)
    assert unit
    assert all(test.startswith("tests/unit/") for test in unit)
