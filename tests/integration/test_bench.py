"""`python -m bench --quick`: every row runs against the real broker and Redis.

A smoke test: it checks that each row measured something and wrote it down, never how fast.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import redis
from kafka.admin import KafkaAdminClient

from tests.integration.conftest import BOOTSTRAP, REDIS, ROOT


def test_quick_benchmark_measures_every_row(tmp_path: Path) -> None:
    output = tmp_path / "bench.md"

    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = output.read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| (\d) \| (.+?) \| (.+?) \| (.+?) \| (.+?) \| (yes|\*\*no\*\*) \|$", table, re.M
    )
    assert [int(number) for number, *_ in rows] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    for _, _, result, compared, _, _ in rows:
        assert re.search(r"\d", result)
        assert re.search(r"\d", compared)
    for number in range(1, 10):
        assert f"\n## {number}. " in table
    assert "logical cores" in table
    assert "kafka-python" in table
    # It cleans up after itself: no topic and no Redis key of the run is left.
    run = re.search(r"run ([0-9a-f]{8})", done.stdout)
    assert run is not None
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        assert not [t for t in admin.list_topics() if t.endswith(run[1])]
    finally:
        admin.close()
    assert not list(redis.Redis(*REDIS).scan_iter(match=f"bench:{run[1]}:*"))
