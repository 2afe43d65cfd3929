"""A sidecar in a forked process: resumed by itself, never ready while no thread reads.

Pre-fork servers (gunicorn ``--preload``, uWSGI without ``lazy-apps``) start the app, and so
the sidecar, in a master process and fork workers from it.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import jwt
import pytest

from jwt_revocation.consumer import RevocationSidecar, SidecarStatus
from jwt_revocation.producer import RevocationPublisher
from tests.integration.conftest import (
    BOOTSTRAP,
    KEY,
    ROOT,
    SidecarFactory,
    free_port,
    issue,
    revocation_reason,
    serving,
)
from tests.support import wait_for


def _in_child(sidecar: RevocationSidecar, token: str, conn: Connection) -> None:
    """Runs in the forked child: report readiness at the fork, then wait for the revocation."""
    report: dict[str, Any] = {
        "status_at_fork": sidecar.status.value,
        "ready_at_fork": sidecar.ready,
    }
    try:
        wait_for(lambda: sidecar.ready, timeout=30)
        report["applied_when_ready"] = sum(sidecar.stats().applied.values())
        conn.send(("ready", report))
        conn.recv()  # the parent has published the revocation
        started = time.monotonic()
        wait_for(lambda: revocation_reason(sidecar, token) == "token_revoked", timeout=30)
        report["seconds_to_reject"] = time.monotonic() - started
        report["started_from"] = sidecar.stats().started_from
        report["applied_after"] = sum(sidecar.stats().applied.values())
        conn.send(("done", report))
    except BaseException as err:  # noqa: BLE001 - the parent fails the test with it
        conn.send(("error", repr(err)))
    finally:
        sidecar.stop()
        os._exit(0)


def test_a_forked_child_resumes_from_the_inherited_state_and_sees_later_revocations(
    publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    publisher.password_changed(user_id="before-the-fork")
    sidecar = make_sidecar()
    wait_for(lambda: sum(sidecar.stats().applied.values()) == 1)
    token = issue("erin")
    parent_end, child_end = multiprocessing.Pipe()

    child = multiprocessing.get_context("fork").Process(
        target=_in_child, args=(sidecar, token, child_end)
    )
    child.start()
    try:
        assert parent_end.poll(40), "the child did not become ready"
        kind, report = parent_end.recv()
        assert kind == "ready", report
        assert report["status_at_fork"] == "loading"
        assert report["ready_at_fork"] is False
        assert report["applied_when_ready"] == 1, "the inherited state, with no new replay"
        publisher.revoke_token(jwt.decode(token, KEY, algorithms=["HS256"]))
        parent_end.send("published")
        assert parent_end.poll(40), "the child did not report"
        kind, report = parent_end.recv()
        assert kind == "done", report
        assert report["started_from"] == "replay"
        assert report["applied_after"] == 2
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
    # The parent goes on reading as before.
    wait_for(lambda: revocation_reason(sidecar, token) == "token_revoked")
    assert sidecar.status is SidecarStatus.CAUGHT_UP


def test_a_stopped_sidecar_stays_stopped_in_a_child(make_sidecar: SidecarFactory) -> None:
    sidecar = make_sidecar()
    sidecar.stop()
    parent_end, child_end = multiprocessing.Pipe()

    def child() -> None:
        child_end.send((sidecar.status.value, sidecar.ready))
        os._exit(0)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    assert parent_end.poll(20)
    assert parent_end.recv() == ("stopped", False)
    process.join(10)


# -- real servers with worker processes ----------------------------------------------------


def _get(url: str, token: str | None = None) -> tuple[int, int]:
    """The status of a GET and the pid of the worker that answered it."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, int(response.headers["X-Worker-Pid"])
    except urllib.error.HTTPError as err:
        return err.code, int(err.headers["X-Worker-Pid"])


SERVERS = {
    "gunicorn --preload": [
        "gunicorn",
        "--preload",
        "--workers",
        "2",
        "--bind",
        "127.0.0.1:{port}",
        "tests.integration.apps.preforked:app",
    ],
    "uvicorn --workers": [
        "uvicorn",
        "--workers",
        "2",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "tests.integration.apps.asgi_workers:app",
    ],
}


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest, topic: str, tmp_path: Path) -> Iterator[str]:
    """A real server with two worker processes serving one of the test apps."""
    port = free_port()
    env = {
        **os.environ,
        "JWT_REVOCATION_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "JWT_REVOCATION_TOPIC": topic,
        "TEST_SIGNING_KEY": KEY,
        "PYTHONPATH": str(ROOT),
    }
    command = [part.format(port=port) for part in SERVERS[request.param]]
    url = f"http://127.0.0.1:{port}"
    with serving(command, env=env, log=tmp_path / "server.log", alive=lambda: _reachable(url)):
        yield url


def _reachable(url: str) -> bool:
    try:
        return _get(f"{url}/healthz")[0] == 200
    except OSError:
        return False


def test_every_worker_refuses_a_token_revoked_after_the_workers_started(
    server: str, publisher: RevocationPublisher
) -> None:
    token = issue("frank")
    seen: set[int] = set()

    def both_workers_accept() -> bool:
        status, pid = _get(f"{server}/whoami", token)
        if status == 200:
            seen.add(pid)
        return len(seen) >= 2

    wait_for(both_workers_accept, timeout=30, interval=0.01)
    started = time.monotonic()
    publisher.revoke_token(jwt.decode(token, KEY, algorithms=["HS256"]))
    refused: set[int] = set()

    def every_worker_refuses() -> bool:
        status, pid = _get(f"{server}/whoami", token)
        assert status in (200, 401), f"worker {pid} answered {status}"
        if status == 401:
            refused.add(pid)
        return refused >= seen

    wait_for(every_worker_refuses, timeout=30, interval=0.01)
    assert len(refused) == 2
    print(f"revoked after the fork: every worker refused within {time.monotonic() - started:.3f} s")
