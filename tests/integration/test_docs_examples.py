"""Every Python and shell example of README.md and docs/ runs, against the local services.

The rule, page by page (tests/docs_examples.py finds the blocks, tests/docs_runner.py runs them):

* A page's ```python, ```bash/```sh/```shell and ```console blocks run in page order in one
  fresh Python process of the repository's virtualenv, like a notebook: a block may use what
  an earlier block of the same page defined, never another page's. Shell blocks run in
  ``bash -euo pipefail`` with the virtualenv's ``bin`` first on ``PATH``; a ```console block's
  ``$`` commands must print exactly the lines the block shows.
* The services are the ones `make services` starts: Kafka 127.0.0.1:9092, Redis 6379,
  PostgreSQL 55432, Keycloak 8180 (scripts/services.sh).
* Each page gets a fresh topic, created before its first block: the pages' topic,
  ``auth.revocations``, is replaced by it in every block (and is ``JWT_REVOCATION_TOPIC``). A
  page that names the local PostgreSQL database ``127.0.0.1:55432/jwt_revocation`` gets a
  fresh database in its place, dropped afterwards. The working directory is a fresh temporary
  one, and the host writer's file ``/dev/shm/jwt-revocation`` becomes a file in it.
* A block is left out only when an HTML comment before it says ``<!-- example: skip
  reason="..." -->``: :func:`test_skipped_examples_are_listed_with_their_reasons` counts and
  lists them. Other marks (``background``, ``django-settings``) change how a block runs, as
  tests/docs_examples.py says. Output and synopses are ```text blocks, which nothing runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from jwt_revocation.shared import ensure_topic
from tests.docs_examples import ROOT, all_examples, examples, pages
from tests.integration.conftest import BOOTSTRAP, LIFETIME, topic_name

PAGE_TOPIC = "auth.revocations"
LOCAL_DATABASE = "127.0.0.1:55432/jwt_revocation"
SHARED_PATH = "/dev/shm/jwt-revocation"
POSTGRES_ADMIN = "postgresql://postgres:jwt-revocation@127.0.0.1:55432/jwt_revocation"
PAGE_TIMEOUT = 120

RUN_PAGES = [
    path for path in pages() if any(example.runs for example in examples(path))
]


@pytest.fixture
def fresh_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of its own on the local PostgreSQL, dropped afterwards."""
    name = f"docs_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield name
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_page_examples_run(
    page: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    text = page.read_text()
    topic = topic_name("docs")
    ensure_topic(BOOTSTRAP, topic, max_token_lifetime=LIFETIME)
    database = None
    if LOCAL_DATABASE in text:
        database = request.getfixturevalue("fresh_database")
    runnable = []
    for example in examples(page):
        if not example.runs:
            continue
        code = example.code.replace(PAGE_TOPIC, topic)
        if database is not None:
            code = code.replace(LOCAL_DATABASE, f"127.0.0.1:55432/{database}")
        attributes = {
            name: value.replace(SHARED_PATH, str(tmp_path / "jwt-revocation"))
            for name, value in example.attributes.items()
        }
        code = code.replace(SHARED_PATH, str(tmp_path / "jwt-revocation"))
        runnable.append(
            {
                "where": example.where,
                "language": example.language,
                "mode": example.mode,
                "attributes": attributes,
                "code": code,
            }
        )
    script = tmp_path / "examples.json"
    script.write_text(json.dumps(runnable))
    work = tmp_path / "work"
    work.mkdir()
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "JWT_REVOCATION_TOPIC": topic,
    }
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "tests" / "docs_runner.py"), str(script)],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
        timeout=PAGE_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


EXPECTED_SKIPS = 0
"""Raise it only with a skip whose reason holds (see the module docstring)."""


def test_skipped_examples_are_listed_with_their_reasons() -> None:
    skipped = [example for example in all_examples() if example.mode == "skip"]
    listing = "\n".join(f"{example.where}: {example.attributes.get('reason')}" for example in skipped)
    print(f"{len(skipped)} examples skipped:\n{listing}")
    assert all(example.attributes.get("reason") for example in skipped), listing
    assert len(skipped) == EXPECTED_SKIPS, listing
