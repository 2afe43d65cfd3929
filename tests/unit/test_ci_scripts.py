"""The scripts `make test` runs beyond the suite: scripts/floors.py (the declared lower bounds as
a constraints file), scripts/find-python.sh (an interpreter of a given version) and the
``compat`` Hypothesis profile of the other Pythons' runs (tests/conftest.py).

Each runs as make runs it, in a subprocess, on files made here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOORS = ROOT / "scripts" / "floors.py"
FIND_PYTHON = ROOT / "scripts" / "find-python.sh"

PYPROJECT = """
[project]
name = "demo"
dependencies = [
  "kafka-python>=3.0.12",
  "PyJWT[crypto]>=2.15",
  "sqlalchemy>=2.0.40",
  "httpx2",  # no lower bound
  "tomli>=2.0; python_version < '3.11'",
  "Flask>=3.0,<4",
  "xxhash~=4.0",
]

[project.optional-dependencies]
outbox = ["sqlalchemy[asyncio]>=2.0.41", "psycopg[binary]>=3.2.1"]
fastapi = ["fastapi >= 0.115.2"]

[dependency-groups]
dev = ["pytest>=9.0", {include-group = "lint"}]
lint = ["ruff==0.17.6", "Django>=5.2"]
"""


def floors(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(text)
    return subprocess.run(
        [sys.executable, str(FLOORS), str(pyproject)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def pins(output: str) -> list[str]:
    return [line for line in output.splitlines() if not line.startswith("#")]


def test_floors_pins_every_declared_lower_bound_of_dependencies_extras_and_groups(
    tmp_path: Path,
) -> None:
    run = floors(PYPROJECT, tmp_path)
    assert run.returncode == 0, run.stderr
    assert pins(run.stdout) == [
        "django==5.2",  # from a dependency group, included by another
        "fastapi==0.115.2",
        "flask==3.0",  # an upper bound is no floor
        "kafka-python==3.0.12",
        "psycopg==3.2.1",  # extras dropped: pip refuses them in a constraints file
        "pyjwt==2.15",
        "pytest==9.0",
        "ruff==0.17.6",
        # named twice: the higher floor, which both requirements accept
        "sqlalchemy==2.0.41",
        'tomli==2.0 ; python_version < "3.11"',  # the marker kept
        "xxhash==4.0",
    ]
    assert "# No lower bound declared: httpx2" in run.stdout.splitlines()


def test_floors_writes_a_constraints_file_pip_accepts(tmp_path: Path) -> None:
    output = tmp_path / "floors.txt"
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(PYPROJECT)
    run = subprocess.run(
        [sys.executable, str(FLOORS), str(pyproject), "-o", str(output)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    assert "sqlalchemy==2.0.41" in output.read_text().splitlines()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[project]\ndependencies = ["redis>8.0"]\n',
            "excludes its lower bound with '>'",
        ),
        ('[project]\ndependencies = ["not a requirement!"]\n', "is not a valid requirement"),
        ('[project]\ndependencies = ["httpx2"]\n', "no lower bound declared"),
        ("[project\n", "pyproject.toml"),
    ],
)
def test_floors_refuses_what_it_cannot_pin(tmp_path: Path, text: str, message: str) -> None:
    run = floors(text, tmp_path)
    assert run.returncode == 1
    assert run.stdout == ""
    assert message in run.stderr


def test_the_projects_own_floors_include_the_fastapi_that_resolves_with_its_starlette(
    tmp_path: Path,
) -> None:
    """fastapi 0.115.0 needs starlette<0.39, below the declared starlette>=0.40."""
    run = floors((ROOT / "pyproject.toml").read_text(), tmp_path)
    assert run.returncode == 0, run.stderr
    lines = pins(run.stdout)
    assert "fastapi==0.115.2" in lines
    assert "starlette==0.40" in lines


def fake_python(path: Path, version: str) -> Path:
    """An executable that answers the version probe as Python ``version`` would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def find_python(version: str, path: Path, pyenv: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{path}:/usr/bin:/bin", "PYENV_ROOT": str(pyenv)}
    return subprocess.run(
        [str(FIND_PYTHON), version],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_find_python_prefers_the_one_on_path(tmp_path: Path) -> None:
    on_path = fake_python(tmp_path / "bin" / "python3.12", "3.12")
    fake_python(tmp_path / "pyenv" / "versions" / "3.12.1" / "bin" / "python3.12", "3.12")
    run = find_python("3.12", tmp_path / "bin", tmp_path / "pyenv")
    assert (run.returncode, run.stdout.strip()) == (0, str(on_path))


def test_find_python_skips_a_shim_that_does_not_run_and_takes_pyenvs_newest(
    tmp_path: Path,
) -> None:
    shim = tmp_path / "bin" / "python3.13"
    shim.parent.mkdir(parents=True)
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    versions = tmp_path / "pyenv" / "versions"
    fake_python(versions / "3.13.0" / "bin" / "python3.13", "3.13")
    newest = fake_python(versions / "3.13.10" / "bin" / "python3.13", "3.13")
    fake_python(versions / "3.12.9" / "bin" / "python3.12", "3.12")
    run = find_python("3.13", tmp_path / "bin", tmp_path / "pyenv")
    assert (run.returncode, run.stdout.strip()) == (0, str(newest))


def test_find_python_fails_saying_where_it_looked(tmp_path: Path) -> None:
    fake_python(tmp_path / "bin" / "python3.12", "3.11")  # a misnamed interpreter does not count
    run = find_python("3.12", tmp_path / "bin", tmp_path / "pyenv")
    assert run.returncode == 1
    assert run.stdout == ""
    assert f"no Python 3.12: not python3.12 on PATH, nor in {tmp_path}/pyenv/versions/3.12.*" in (
        run.stderr
    )


def test_find_python_refuses_what_is_not_a_version(tmp_path: Path) -> None:
    run = find_python("latest", tmp_path, tmp_path)
    assert run.returncode == 2
    assert "'latest' is not a Python version" in run.stderr


PROPERTY_TEST = """
from pathlib import Path

from hypothesis import given, settings, strategies as st


class TestInAClass:
    @settings(max_examples=1_000, deadline=None)
    @given(st.integers())
    def test_counted(self, number: int) -> None:
        with Path("{calls}").open("a") as calls:
            calls.write("x")
"""


@pytest.mark.parametrize(
    ("profile", "calls"), [([], 1_000), (["--hypothesis-profile=compat"], 100)]
)
def test_the_compat_profile_caps_a_tests_own_example_count(
    tmp_path: Path, profile: list[str], calls: int
) -> None:
    """The main run draws each test's full count; the other Pythons' runs at most 100."""
    counter = tmp_path / "calls"
    test_file = tmp_path / "test_property.py"
    test_file.write_text(PROPERTY_TEST.format(calls=counter))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(test_file),
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.conftest",
            f"--rootdir={tmp_path}",
            "--hypothesis-seed=0",
            *profile,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(counter.read_text()) == calls
