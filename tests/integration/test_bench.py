"""`python -m bench --quick`: every row runs against the real broker and Redis, each group
alone (``--only GROUP``).

A smoke test: it checks that each row measured something and wrote it down, never how fast.
The row numbers come from the registry in ``bench.rows``, so a new group is tested as it is
registered. The groups together cover every row; a run of all of them in one process (which
`make bench` is) repeated every row of these runs, 150 s of a loaded CI's test time, and is left
to `make bench`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from kafka.admin import KafkaAdminClient

from bench.rows import GROUPS
from tests.integration.conftest import BOOTSTRAP, REDIS, ROOT


def _quick_bench(output: Path, *only: str) -> str:
    """Run ``python -m bench --quick`` writing its table to ``output``; return its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)]
        + (["--only", *only] if only else []),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _measured_rows(table: str) -> list[int]:
    """The numbers of the table's rows, each checked to hold figures and details."""
    rows = re.findall(
        r"^\| (\d+) \| (.+?) \| (.+?) \| (.+?) \| (.+?) \| (yes|\*\*no\*\*) \|$", table, re.M
    )
    for number, _, result, compared, _, _ in rows:
        assert re.search(r"\d", result), number
        assert re.search(r"\d", compared), number
        assert f"\n## {number}. " in table
    return [int(number) for number, *_ in rows]


def _assert_cleaned_up(stdout: str) -> None:
    """No topic and no Redis key of the run is left."""
    run = re.search(r"run ([0-9a-f]{8})", stdout)
    assert run is not None
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        assert not [t for t in admin.list_topics() if t.endswith(run[1])]
    finally:
        admin.close()
    assert not list(redis.Redis(*REDIS).scan_iter(match=f"bench:{run[1]}:*"))


@pytest.mark.parametrize("group", list(GROUPS))
def test_each_group_runs_alone(tmp_path: Path, group: str) -> None:
    output = tmp_path / "bench.md"

    stdout = _quick_bench(output, group)

    table = output.read_text(encoding="utf-8")
    assert _measured_rows(table) == sorted(GROUPS[group].titles)
    assert "logical cores" in table
    assert "kafka-python" in table
    _assert_cleaned_up(stdout)
