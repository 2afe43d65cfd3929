"""Runs one page's examples in order, in this process, like a notebook.

``python tests/docs_runner.py EXAMPLES.json`` (written by tests/integration/test_docs_examples.py)
in the directory the examples may write to. Python blocks share one namespace, so a page's
blocks build on its earlier ones; shell blocks run in ``bash -euo pipefail``; a ```console
block's commands must print exactly what the block shows, and so must a Python block followed
by a ```text block marked ``<!-- example: output -->``; background commands are stopped with
SIGTERM once the page's last block has run. Exits 1 at the first failure, naming its page and
line.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.docs_examples import DJANGO_BASE_SETTINGS, console_steps

START_TIMEOUT = 60.0
BASH = shutil.which("bash") or "/bin/bash"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer: it serves
    except OSError:
        return False


def _start(example: dict[str, Any]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [BASH, "-euo", "pipefail", "-c", example["code"]], start_new_session=True
    )
    wait_url = example["attributes"].get("wait")
    wait_file = example["attributes"].get("wait-file")
    deadline = time.monotonic() + START_TIMEOUT
    if not (wait_url or wait_file):
        return process  # the blocks after it wait for what it does
    while not ((wait_url and _answers(wait_url)) or (wait_file and os.path.exists(wait_file))):
        if process.poll() is not None:
            raise RuntimeError(f"the background command ended with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not serving within {START_TIMEOUT} s")
        time.sleep(0.05)
    return process


def _stop(process: subprocess.Popen[bytes], where: str) -> None:
    if process.poll() is not None:
        raise RuntimeError(f"{where}: the background command ended early ({process.returncode})")
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise RuntimeError(f"{where}: the background command ignored SIGTERM for 15 s") from None


def _django(code: str, index: int) -> None:
    module = f"docs_settings_{index}"
    Path(f"{module}.py").write_text(DJANGO_BASE_SETTINGS + "\n" + code)
    environment = {**os.environ, "PYTHONPATH": os.getcwd()}
    result = subprocess.run(
        [sys.executable, "-m", "django", "check", f"--settings={module}"],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"django check failed:\n{result.stdout}{result.stderr}")


def _console(code: str) -> None:
    for command, expected in console_steps(code):
        result = subprocess.run(
            [BASH, "-c", command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        printed = result.stdout.rstrip("\n")
        if printed != expected:
            raise RuntimeError(f"$ {command}\nprinted:\n{printed}\nthe page shows:\n{expected}")


class _Tee(io.StringIO):
    """Keeps what a block prints, and prints it."""

    def __init__(self) -> None:
        super().__init__()
        self.out = sys.stdout

    def write(self, text: str) -> int:
        self.out.write(text)
        return super().write(text)


def _same_output(printed: str, shown: str) -> None:
    if printed.rstrip("\n") != shown.rstrip("\n"):
        raise RuntimeError(f"the block before printed:\n{printed}\nthe page shows:\n{shown}")


def main(path: str) -> int:
    examples: list[dict[str, Any]] = json.loads(Path(path).read_text())
    namespace: dict[str, Any] = {"__name__": "__main__"}
    background: list[tuple[subprocess.Popen[bytes], str]] = []
    printed = ""
    try:
        for index, example in enumerate(examples):
            where = example["where"]
            print(f"--- {where} ({example['language']}, {example['mode']})", flush=True)
            try:
                if example["mode"] == "background":
                    background.append((_start(example), where))
                elif example["mode"] == "django-settings":
                    _django(example["code"], index)
                elif example["mode"] == "output":
                    _same_output(printed, example["code"])
                elif example["language"] == "python":
                    with contextlib.redirect_stdout(_Tee()) as tee:
                        exec(compile(example["code"], where, "exec"), namespace)  # noqa: S102
                    printed = tee.getvalue()
                elif example["language"] == "console":
                    _console(example["code"])
                else:
                    subprocess.run([BASH, "-euo", "pipefail", "-c", example["code"]], check=True)
            except BaseException as error:  # noqa: BLE001 - reported with its page and line
                traceback.print_exc()
                print(f"FAILED {where}: {error}", flush=True)
                return 1
        for process, where in background:
            _stop(process, where)
        background.clear()
    finally:
        for process, _ in background:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
