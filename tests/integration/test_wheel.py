"""The package as a user installs it: a wheel built from this checkout, in a fresh virtualenv.

With the base dependencies only, the wheel publishes a revocation, and a sidecar embedded in
that virtualenv's Python reads it from the real local Kafka and refuses the revoked token
while it accepts another. Then, in the same virtualenv, extra by extra: importing the part
that needs it first fails with :class:`MissingExtraError` naming the ``pip install`` to run;
after ``pip install "<wheel>[extra]"`` the import works.

The installs go through uv (``uv pip install``, the same metadata and resolution rules as pip):
it reaches the package index and its cache in parallel, about 1 s an install here where pip took
10-20 s each (the whole module 160 s). The constraints file pins the versions ``make install``
uses.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.integration.conftest import BOOTSTRAP, topic_name

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# What the wheel is built from: pyproject.toml and the folders it maps.
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "api", "producer", "consumer", "shared"]
SOURCES += ["cli", "django_integration"]
BASE = {"kafka-python", "crc32c", "pyjwt", "pydantic", "pydantic-settings", "xxhash"}
OPTIONAL = {"starlette", "uvicorn", "httptools", "prometheus-client", "redis", "hiredis"}
OPTIONAL |= {"fastapi", "flask", "django", "djangorestframework", "sqlalchemy", "psycopg"}

# Each extra, in an order where no earlier extra already brings what the next one's module
# imports (FastAPI's module needs only Starlette, which [http] would bring), and a statement
# that imports a part needing it.
EXTRAS = [
    ("fastapi", "import jwt_revocation.consumer.fastapi"),
    ("metrics", "from jwt_revocation.consumer import SidecarCollector"),
    ("redis", "from jwt_revocation.consumer import RedisBlocklist"),
    ("flask", "import jwt_revocation.consumer.flask"),
    ("django", "from jwt_revocation.django import revocation_settings"),
    ("http", "from jwt_revocation.consumer import SidecarHTTPServer"),
    ("outbox", "from jwt_revocation import OutboxRelay"),
    # [cli] is [http], [redis] and [outbox] together: nothing is left for it to bring here.
]

VERIFY = """
import sys, time, uuid
from datetime import timedelta

import jwt

import jwt_revocation as jr

bootstrap, topic = sys.argv[1:]
key = "wheel-test-signing-key-0123456789abcdef"
jr.ensure_topic(bootstrap, topic, max_token_lifetime=timedelta(hours=1), partitions=1)
now = int(time.time())
revoked = {"sub": "alice", "jti": uuid.uuid4().hex, "iat": now, "exp": now + 600}
kept = {**revoked, "jti": uuid.uuid4().hex}
with jr.RevocationPublisher(bootstrap, topic, issuer="wheel-test") as publisher:
    publisher.revoke_token(revoked)
with jr.RevocationSidecar(bootstrap, topic, max_token_lifetime=timedelta(hours=1)) as sidecar:
    verifier = jr.RevocationVerifier(sidecar, key=key, algorithms=["HS256"])
    print("kept", verifier.verify(jwt.encode(kept, key, algorithm="HS256"))["jti"] == kept["jti"])
    try:
        verifier.verify(jwt.encode(revoked, key, algorithm="HS256"))
    except jr.TokenRevokedError as err:
        print("revoked", err.reason)
"""


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, cwd=cwd
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the checkout's sources (no build files left in it)."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, source)
    (built,) = out.glob("jwt_revocation-*.whl")
    return built


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh virtualenv with the wheel and its base dependencies only."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=False)
    python = home / "bin" / "python"
    _pip(python, str(wheel))
    return python


UV = Path(sys.executable).parent / "uv"
"""uv, installed beside the test's Python by ``make install`` (the test group)."""


def _pip(python: Path, requirement: str) -> None:
    _run(
        UV, "pip", "install", "-q", "--python", python, "-c", ROOT / "constraints.txt", requirement
    )


def _installed(python: Path) -> set[str]:
    listed = _run(UV, "pip", "list", "--format=freeze", "--python", python)
    return {line.split("==")[0].lower().replace("_", "-") for line in listed.split()}


def test_the_base_install_verifies_against_a_sidecar_reading_kafka(python: Path) -> None:
    installed = _installed(python)

    assert installed >= BASE
    assert sorted(installed & OPTIONAL) == []
    out = _run(python, "-c", VERIFY, BOOTSTRAP, topic_name("wheel"), cwd=python.parent)
    assert out.split("\n") == ["kept True", "revoked token_revoked", ""]
    command = subprocess.run(
        [python.parent / "jwt-revocation", "--help"], capture_output=True, text=True, check=False
    )
    last = command.stderr.strip().splitlines()[-1]
    assert last.startswith("jwt_revocation.shared._errors.MissingExtraError: the jwt-revocation")
    assert last.endswith('pip install "jwt-revocation[cli]"')


def test_each_extra_is_named_when_missing_and_installs(python: Path, wheel: Path) -> None:
    for extra, statement in EXTRAS:
        missing = subprocess.run(
            [python, "-c", statement], capture_output=True, text=True, check=False
        )
        last = missing.stderr.strip().splitlines()[-1] if missing.stderr.strip() else ""
        assert last.startswith("jwt_revocation.shared._errors.MissingExtraError"), (extra, last)
        assert last.endswith(f'pip install "jwt-revocation[{extra}]"'), (extra, last)

        _pip(python, f"{wheel}[{extra}]")

        _run(python, "-c", statement)

    _pip(python, f"{wheel}[all]")
    _run(python, "-c", "; ".join(statement for _, statement in EXTRAS))
    assert "usage: jwt-revocation" in _run(python.parent / "jwt-revocation", "--help")
