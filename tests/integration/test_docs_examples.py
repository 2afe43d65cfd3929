"""Every Python and shell example of README.md and docs/ runs, against the local services.

The rule, page by page (tests/docs_examples.py finds the blocks, tests/docs_runner.py runs them):

* A page's ```python, ```bash/```sh/```shell and ```console blocks run in page order in one
  fresh Python process of the repository's virtualenv, like a notebook: a block may use what
  an earlier block of the same page defined, never another page's. The pages run at the same
  time, so a port a page's example listens on is its own (18000-18091, one per page). Shell blocks run in
  ``bash -euo pipefail`` with the virtualenv's ``bin`` first on ``PATH``; a ```console block's
  ``$`` commands must print exactly the lines the block shows, as must a Python block followed
  by a ```text block marked ``<!-- example: output -->``.
* The services are the ones `make services` starts: Kafka 127.0.0.1:9092, Redis 6379,
  PostgreSQL 55432, Keycloak 8180 (scripts/services.sh).
* Each page gets a fresh topic, created before its first block: the pages' topic,
  ``auth.revocations``, is replaced by it in every block (and is ``JWT_REVOCATION_TOPIC``). A
  page that names the local PostgreSQL database ``127.0.0.1:55432/jwt_revocation`` gets a
  fresh database in its place, dropped afterwards. The working directory is a fresh temporary
  one, and the host writer's file ``/dev/shm/jwt-revocation`` becomes a file in it.
* A block is left out only when an HTML comment before it says ``<!-- example: skip
  reason="..." -->``: :func:`test_skipped_examples_are_listed_with_their_reasons` counts and
  lists them. Other marks (``background``, ``django-settings``, ``output``) change how a block runs, as
  tests/docs_examples.py says. Output and synopses are ```text blocks, which nothing runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

from jwt_revocation.shared import ensure_topic
from tests.docs_examples import ROOT, all_examples, examples, pages
from tests.integration.conftest import BOOTSTRAP, LIFETIME, topic_name

PAGE_TOPIC = "auth.revocations"
LOCAL_DATABASE = "127.0.0.1:55432/jwt_revocation"
SHARED_PATH = "/dev/shm/jwt-revocation"  # noqa: S108 - the pages' path, replaced by a temporary one
POSTGRES_ADMIN = "postgresql://postgres:jwt-revocation@127.0.0.1:55432/jwt_revocation"
PAGE_TIMEOUT = 120

RUN_PAGES = [path for path in pages() if any(example.runs for example in examples(path))]


def _create_database() -> str:
    name = f"docs_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return name


def _drop_database(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class PageRun:
    """One page's runner process and where its output goes."""

    page: str
    process: subprocess.Popen[bytes]
    log: Path
    started: float
    database: str | None


def _start_page(page: Path, folder: Path) -> PageRun:
    """Prepare the page's topic, database and folder, and start its runner."""
    text = page.read_text()
    folder.mkdir()
    topic = topic_name("docs")
    ensure_topic(BOOTSTRAP, topic, max_token_lifetime=LIFETIME)
    database = _create_database() if LOCAL_DATABASE in text else None
    shared_path = str(folder / "jwt-revocation")

    def localised(text: str) -> str:
        text = text.replace(PAGE_TOPIC, topic).replace(SHARED_PATH, shared_path)
        if database is not None:
            text = text.replace(LOCAL_DATABASE, f"127.0.0.1:55432/{database}")
        return text

    runnable = [
        {
            "where": example.where,
            "language": example.language,
            "mode": example.mode,
            "attributes": {name: localised(value) for name, value in example.attributes.items()},
            "code": localised(example.code),
        }
        for example in examples(page)
        if example.runs
    ]
    script = folder / "examples.json"
    script.write_text(json.dumps(runnable))
    work = folder / "work"
    work.mkdir()
    log = folder / "output.log"
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "JWT_REVOCATION_TOPIC": topic,
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "docs_runner.py"), str(script)],
            cwd=work,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return PageRun(page.relative_to(ROOT).as_posix(), process, log, time.monotonic(), database)


def test_every_page_runs(tmp_path: Path) -> None:
    """The pages run at once, each in its own process (about the time of the slowest page
    instead of the sum: the examples mostly wait for the broker and for interpreters to start)."""
    runs = [_start_page(page, tmp_path / f"page{index}") for index, page in enumerate(RUN_PAGES)]
    failures = []
    try:
        for run in runs:
            try:
                code = str(run.process.wait(timeout=PAGE_TIMEOUT))
            except subprocess.TimeoutExpired:
                run.process.kill()
                code = "timeout"
            took = time.monotonic() - run.started
            print(f"{run.page}: {took:.1f} s")
            if code != "0":
                failures.append(f"=== {run.page} ({code})\n{run.log.read_text()}")
    finally:
        for run in runs:
            if run.process.poll() is None:
                run.process.kill()
            if run.database is not None:
                _drop_database(run.database)
    assert not failures, "\n".join(failures)


EXPECTED_SKIPS = 10
"""Raise it only with a skip whose reason holds (see the module docstring)."""


def test_skipped_examples_are_listed_with_their_reasons() -> None:
    skipped = [example for example in all_examples() if example.mode == "skip"]
    listing = "\n".join(
        f"{example.where}: {example.attributes.get('reason')}" for example in skipped
    )
    print(f"{len(skipped)} examples skipped:\n{listing}")
    assert all(example.attributes.get("reason") for example in skipped), listing
    assert len(skipped) == EXPECTED_SKIPS, listing
