"""scripts/services.sh: no service it starts holds one of its start locks.

The script serialises concurrent starts with flock on ``keycloak.lock``, ``kafka-secured.lock``
and ``kafka-cluster.lock`` in the services directory. A service launched while the script held
one of them used to inherit its descriptor (``start`` took ``keycloak.lock`` and then started
the TLS Redis, the secured broker and the cluster), so the next ``keycloak-start`` waited 600 s
for a lock that a running broker held.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bench.secured import services_dir
from tests.integration.conftest import SERVICES

START_LOCKS = ("keycloak.lock", "kafka-secured.lock", "kafka-cluster.lock")


def _services(action: str, timeout: float) -> None:
    run = subprocess.run(
        [str(SERVICES), action], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert run.returncode == 0, run.stderr


def _lock_holders() -> dict[str, list[str]]:
    """Start lock -> the processes that hold it other than a start running now (``flock``,
    which holds it for the start it runs)."""
    locks = {str(services_dir() / name): name for name in START_LOCKS}
    holders: dict[str, list[str]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            targets = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:100]
        except OSError:  # gone, or not ours to read
            continue
        if command.startswith("flock "):
            continue
        for target in targets & locks.keys():
            holders.setdefault(locks[target], []).append(f"{proc.name}: {command}")
    return holders


def test_each_start_again_returns_at_once_and_no_service_holds_a_start_lock() -> None:
    # Services an older services.sh started may hold one: each start below would wait 600 s.
    assert _lock_holders() == {}, "restart the services: scripts/services.sh stop; ... start"
    _services("start", timeout=900)  # whatever is missing starts (minutes, the first time)
    for action in ("keycloak-start", "secured-start", "cluster-start"):
        _services(action, timeout=120)  # running already: each returns within seconds

    assert _lock_holders() == {}
