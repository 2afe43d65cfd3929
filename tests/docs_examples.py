"""The code examples of README.md and docs/: found, classified, and handed to a runner.

Every fenced block carries a language. ```python, ```bash, ```sh, ```shell and ```console
blocks are examples and are run (tests/integration/test_docs_examples.py); every other
language (```text for output and synopses, ```yaml, ```sql, ```nginx...) is shown, not run.
An HTML comment on the line just before a fence changes how it runs:

* ``<!-- example: skip reason="..." -->``: not run; the reason says why (the suite runs the
  same thing another way, or it needs something the machine lacks). Counted and listed.
* ``<!-- example: background wait="http://127.0.0.1:PORT/path" -->`` (or ``wait-file="PATH"``):
  a command that serves until stopped. It is started, the URL waited for until it answers at all
  (or the file until it exists; with neither, the blocks after it wait for what it does), the
  page's later blocks run, then it gets SIGTERM. Ending before that is a failure.
* ``<!-- example: output -->`` before a ```text block: what the Python block just before it
  printed, exactly.
* ``<!-- example: django-settings -->``: lines of a Django settings module. They run appended to
  :data:`DJANGO_BASE_SETTINGS` (a project with Django's auth, DRF and simplejwt on SQLite,
  ``PUBLIC_KEY`` an RSA public key), then ``django-admin check`` must pass on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_LANGUAGES = frozenset({"python", "bash", "sh", "shell", "console"})
SHOWN_LANGUAGES = frozenset(
    {"text", "yaml", "sql", "nginx", "caddyfile", "json", "toml", "ini", "dockerfile"}
)

_FENCE = re.compile(r"^```(\S*)\s*$")
_MARK = re.compile(r"^<!--\s*example:\s*(\S+)(.*?)-->\s*$")
_ATTR = re.compile(r'([\w-]+)="([^"]*)"')


@dataclass(frozen=True)
class Example:
    """One fenced block of a page."""

    page: str
    line: int
    language: str
    code: str
    mode: str = "run"
    """``run``, ``skip``, ``background`` or ``django-settings``."""
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def runs(self) -> bool:
        """Run, or (an output block) compared with what the block before it printed."""
        return (self.language in RUN_LANGUAGES and self.mode != "skip") or self.mode == "output"

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """README.md and every page of the documentation site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def examples(path: Path) -> list[Example]:
    """The fenced blocks of one page, in order, with the marks before them."""
    name = path.relative_to(ROOT).as_posix()
    lines = path.read_text().splitlines()
    found: list[Example] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"{name}:{index + 1}: a fence that is never closed")
        mode, attributes = "run", {}
        mark = _MARK.match(lines[index - 1]) if index else None
        if mark is not None:
            mode = mark.group(1)
            attributes = dict(_ATTR.findall(mark.group(2)))
        found.append(
            Example(
                page=name,
                line=index + 1,
                language=opening.group(1),
                code="\n".join(lines[index + 1 : end]) + "\n",
                mode=mode,
                attributes=attributes,
            )
        )
        index = end + 1
    return found


def all_examples() -> list[Example]:
    return [example for path in pages() for example in examples(path)]


def console_steps(code: str) -> list[tuple[str, str]]:
    """A ```console block as (command, expected output) pairs: lines after ``$ `` are a command,
    the lines up to the next one its output (stdout and stderr together)."""
    steps: list[tuple[str, list[str]]] = []
    for line in code.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
        else:
            raise ValueError(f"console output before any command: {line!r}")
    return [(command, "\n".join(output)) for command, output in steps]


DJANGO_BASE_SETTINGS = """
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SECRET_KEY = "docs-example-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__
urlpatterns = []
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rest_framework_simplejwt",
]
MIDDLEWARE = []
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
SIMPLE_JWT = {}
PUBLIC_KEY = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
"""
