"""One host writer, many worker processes: gunicorn (8 workers), uvicorn (4 workers) and a
Django service under gunicorn (4 workers, ``JWT_REVOCATION_SHARED_PATH``) read the revocation
state from the writer's shared file.

Each server starts before its writer, behind a file that others may write: every worker
answers 503. The writer replaces that file; every worker serves, then refuses a token revoked
afterwards. The writer is killed (SIGKILL): every worker fails closed once the heartbeat is
older than max_staleness. A new writer takes the file over: every worker serves again, and
the token revoked before stays refused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import jwt
import pytest

from jwt_revocation.consumer import RevocationVerifier, SharedRevocations
from jwt_revocation.consumer._shared_state import SharedStateWriter
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import SidecarUnavailableError
from tests.integration.conftest import (
    BOOTSTRAP,
    KEY,
    LIFETIME,
    ROOT,
    SidecarFactory,
    free_port,
    issue,
    serving,
    verifier_for,
)
from tests.integration.test_fork import _get
from tests.support import wait_for

STALENESS = 2.0

SERVERS = {
    "gunicorn 8 workers": (
        8,
        [
            *("gunicorn", "--workers", "8", "--bind", "127.0.0.1:{port}"),
            "tests.integration.apps.shared_workers:flask_app",
        ],
    ),
    "uvicorn 4 workers": (
        4,
        [
            *("uvicorn", "--workers", "4", "--host", "127.0.0.1", "--port", "{port}"),
            "tests.integration.apps.shared_workers:asgi_app",
        ],
    ),
}


def every_worker(
    url: str, token: str, status: int, workers: int, path: str = "/whoami"
) -> Callable[[], bool]:
    """A wait condition: true once ``workers`` distinct workers answered ``status``; any other
    answer must be one of the two states the test moves between."""
    answered: set[int] = set()

    def check() -> bool:
        code, pid = _get(f"{url}{path}", token)
        assert code in (200, 401, 503), f"worker {pid} answered {code}"
        if code == status:
            answered.add(pid)
        return len(answered) >= workers

    return check


@contextmanager
def host_writer(env: dict[str, str], path: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``jwt-revocation sidecar --shared-path PATH`` in its own process."""
    command = [sys.executable, "-m", "jwt_revocation.cli", "sidecar", "--shared-path", str(path)]
    with log.open("a") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)


@pytest.mark.parametrize("server", list(SERVERS))
def test_workers_share_one_host_writer_and_fail_closed_without_it(
    server: str, topic: str, publisher: RevocationPublisher, tmp_path: Path
) -> None:
    workers, command = SERVERS[server]
    path = tmp_path / "revocations"
    env = {
        **os.environ,
        "JWT_REVOCATION_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "JWT_REVOCATION_TOPIC": topic,
        "JWT_REVOCATION_MAX_TOKEN_LIFETIME": str(int(LIFETIME.total_seconds())),
        "JWT_REVOCATION_MAX_STALENESS": str(STALENESS),
        "JWT_REVOCATION_SHARED_PATH": str(path),
        "JWT_REVOCATION_VERIFY_KEY": KEY,
        "PYTHONPATH": str(ROOT),
    }
    # A file that others may write, ready and fresh in every other respect: refused.
    planted = SharedStateWriter(
        path,
        topic=topic,
        max_entries=10_000_000,
        max_token_lifetime=LIFETIME.total_seconds(),
        max_clock_skew=60.0,
        max_staleness=3600.0,
    )
    planted.open()
    planted.heartbeat(topic, time.time() + 3000)
    planted.close()
    path.chmod(0o666)
    token = issue("grace")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [part.format(port=port) for part in command]

    def reachable() -> bool:
        try:
            return _get(f"{url}/healthz")[0] == 200
        except OSError:
            return False

    with serving(argv, env=env, log=tmp_path / "server.log", alive=reachable):
        wait_for(every_worker(url, token, 503, workers), timeout=60, interval=0.01)
        writer_log = tmp_path / "writer.log"
        with host_writer(env, path, writer_log) as writer:
            wait_for(every_worker(url, token, 200, workers), timeout=60, interval=0.01)
            assert path.stat().st_mode & 0o777 == 0o600
            publisher.revoke_token(jwt.decode(token, KEY, algorithms=["HS256"]))
            wait_for(every_worker(url, token, 401, workers), timeout=30, interval=0.01)
            writer.send_signal(signal.SIGKILL)
            writer.wait(10)
            # Within the staleness bound of the last heartbeat (the margin: requests to
            # every worker on a busy machine).
            wait_for(every_worker(url, token, 503, workers), timeout=STALENESS + 10, interval=0.01)
        fresh = issue("heidi")
        with host_writer(env, path, writer_log):
            wait_for(every_worker(url, fresh, 200, workers), timeout=60, interval=0.01)
            wait_for(every_worker(url, token, 401, workers), timeout=30, interval=0.01)
    written = writer_log.read_text()
    assert "shared state taken over" in written
    assert "sidecar resuming its shared state" in written, "a warm start, not a replay"


def test_an_embedded_host_writer_answers_as_its_readers_and_restarts_without_replaying(
    make_sidecar: SidecarFactory, publisher: RevocationPublisher, tmp_path: Path
) -> None:
    path = tmp_path / "revocations"
    writer = make_sidecar(shared_path=path, max_entries=1000)
    assert writer.stats().started_from == "replay"
    token = issue("ivan")
    other = issue("judy")
    publisher.revoke_token(jwt.decode(token, KEY, algorithms=["HS256"]))
    publisher.password_changed(user_id="judy")
    wait_for(lambda: writer.state.counts()["user_tokens_revoked"] == 1)
    reader = RevocationVerifier(SharedRevocations(path), key=KEY, algorithms=["HS256"])
    for verifier in (verifier_for(writer), reader):
        assert verifier.decide(token).reason == "token_revoked"
        assert verifier.decide(other).reason == "user_tokens_revoked"
        assert verifier.decide(issue("kim")).reason is None
    writer.stop()
    with pytest.raises(SidecarUnavailableError) as stopped:
        reader.verify(issue("kim"))
    assert stopped.value.reason == "stopped"

    again = make_sidecar(shared_path=path, max_entries=1000)
    assert again.stats().started_from == "shared state (2 entries)"
    assert sum(again.stats().applied.values()) == 0, "nothing read again"
    assert reader.decide(token).reason == "token_revoked"
    publisher.logout_session(user_id="kim", session_id="s-1")
    wait_for(lambda: again.state.counts()["session_revoked"] == 1)
    session = jwt.encode(
        {"sub": "kim", "sid": "s-1", "iat": time.time() - 5, "exp": int(time.time()) + 600},
        KEY,
        algorithm="HS256",
    )
    assert reader.decide(session).reason == "session_revoked"


DJANGO_WORKERS = 4


def _simplejwt_access(user_id: str) -> str:
    """An access token as simplejwt issues it (``token_type``, ``user_id``), signed with the
    key the Django service verifies with."""
    now = time.time()
    claims = {"token_type": "access", "jti": os.urandom(8).hex(), "user_id": user_id}
    return jwt.encode({**claims, "iat": now, "exp": int(now) + 600}, KEY, algorithm="HS256")


def test_django_workers_read_the_host_writer_with_no_sidecar_of_their_own(
    topic: str, publisher: RevocationPublisher, tmp_path: Path
) -> None:
    """Django under gunicorn with 4 workers: 503 before the writer, then every worker (DRF
    class and middleware) refuses a token revoked afterwards; SIGKILL of the writer: 503
    within the staleness bound; a new writer: served again."""
    path = tmp_path / "revocations"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.integration.django_project.service_site.settings",
        "JWT_REVOCATION_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "JWT_REVOCATION_TOPIC": topic,
        "JWT_REVOCATION_MAX_TOKEN_LIFETIME": "3600",
        "JWT_REVOCATION_MAX_STALENESS": str(STALENESS),
        "JWT_REVOCATION_SHARED_PATH": str(path),
        "TEST_TOPIC": topic,
        "TEST_SIGNING_KEY": KEY,
        "PYTHONPATH": str(ROOT),
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = ["gunicorn", "--workers", str(DJANGO_WORKERS), "--bind", f"127.0.0.1:{port}"]
    command.append("tests.integration.django_project.service_site.wsgi:application")
    token = _simplejwt_access("7")
    views = ("/api/whoami", "/plain/whoami")  # the DRF class, the middleware

    def everywhere(token: str, status: int, timeout: float = 60) -> None:
        for view in views:
            wait_for(
                every_worker(url, token, status, DJANGO_WORKERS, view),
                timeout=timeout,
                interval=0.01,
            )

    def reachable() -> bool:
        try:
            return _get(f"{url}/healthz")[0] == 200
        except OSError:
            return False

    server_log = tmp_path / "server.log"
    with serving(command, env=env, log=server_log, alive=reachable):
        everywhere(token, 503)  # started before the writer: fail closed
        writer_log = tmp_path / "writer.log"
        with host_writer(env, path, writer_log) as writer:
            everywhere(token, 200)
            claims = jwt.decode(token, KEY, algorithms=["HS256"])
            publisher.revoke_token(claims, user_claim="user_id")
            everywhere(token, 401, timeout=30)
            writer.send_signal(signal.SIGKILL)
            writer.wait(10)
            # The heartbeat comes every STALENESS / 3: each worker fails closed within
            # STALENESS of the last one (the margin is for 8 requests on a busy machine).
            everywhere(token, 503, timeout=STALENESS + 10)
        fresh = _simplejwt_access("8")
        with host_writer(env, path, writer_log):
            everywhere(fresh, 200)
            everywhere(token, 401, timeout=30)
    served = server_log.read_text()
    assert served.count("reading the host's shared state") >= DJANGO_WORKERS
    assert "sidecar django-" not in served, "no worker ran a sidecar of its own"
