"""Write a pip constraints file that pins every lower bound pyproject.toml declares.

    python scripts/floors.py [PYPROJECT] [-o OUTPUT]

Reads ``[project] dependencies``, every list of ``[project.optional-dependencies]`` and every
group of ``[dependency-groups]`` (PEP 735; ``{include-group = ...}`` entries are skipped: the
group they name is read anyway) and prints one ``name==floor`` line per distribution, the floor
being the version of its ``>=``, ``~=`` or ``==`` clause. Installing the project with these
constraints (``pip install -c floors.txt -e ".[dev]"``) installs each declared dependency at the
lowest version pyproject.toml claims to support; what they depend on in turn resolves to the
newest version their own ranges allow (uv calls this resolution "lowest-direct").

* A distribution named more than once (``sqlalchemy>=2.0.40`` in the dependencies and
  ``sqlalchemy[asyncio]>=2.0.40`` in an extra) is pinned once, at its highest floor: the
  version every one of those requirements accepts. Extras are dropped (pip refuses them in a
  constraints file); an environment marker is kept on its line.
* A requirement without a lower bound (``httpx2``) claims none: it is listed in a comment.
* A floor that only ``>`` gives (an excluded version) cannot be pinned: that is an error, as is
  a file that declares no dependencies at all.

Exit status 0, or 1 with a message on standard error saying what to fix.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

FLOOR_OPERATORS = (">=", "~=", "==")


class FloorError(Exception):
    """pyproject.toml declares something this script cannot turn into a pin."""


def declared(pyproject: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every requirement string pyproject.toml declares, with where it was found."""
    project = pyproject.get("project", {})
    for text in project.get("dependencies", []):
        yield "[project] dependencies", text
    for extra, texts in project.get("optional-dependencies", {}).items():
        for text in texts:
            yield f"[project.optional-dependencies] {extra}", text
    for group, entries in pyproject.get("dependency-groups", {}).items():
        for entry in entries:
            if isinstance(entry, str):  # else {include-group = "..."}: read as its own group
                yield f"[dependency-groups] {group}", entry


def floor(requirement: Requirement, where: str) -> Version | None:
    """The lowest version the requirement accepts by its ``>=``/``~=``/``==`` clauses, or None."""
    floors = [
        Version(spec.version)
        for spec in requirement.specifier
        if spec.operator in FLOOR_OPERATORS and "*" not in spec.version
    ]
    if floors:
        return max(floors)
    if any(spec.operator == ">" for spec in requirement.specifier):
        raise FloorError(
            f"{where}: {requirement} excludes its lower bound with '>', which cannot be pinned; "
            "write it as '>=' the lowest version that works"
        )
    return None


def constraints(requirements: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """The ``name==floor`` lines (sorted by name) and the names that declare no floor."""
    pins: dict[tuple[str, str], Version] = {}
    unbounded: set[str] = set()
    for where, text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as err:
            raise FloorError(f"{where}: {text!r} is not a valid requirement ({err})") from err
        name = canonicalize_name(requirement.name)
        marker = str(requirement.marker) if requirement.marker else ""
        version = floor(requirement, where)
        if version is None:
            unbounded.add(name)
            continue
        pins[(name, marker)] = max(version, pins.get((name, marker), version))
    if not pins:
        raise FloorError("no lower bound declared: nothing to pin")
    lines = [
        f"{name}=={version}" + (f" ; {marker}" if marker else "")
        for (name, marker), version in sorted(pins.items())
    ]
    return lines, sorted(unbounded - {name for name, _ in pins})


def render(pyproject_path: Path) -> str:
    """The constraints file's text for the pyproject.toml at ``pyproject_path``."""
    with pyproject_path.open("rb") as file:
        pyproject = tomllib.load(file)
    lines, unbounded = constraints(declared(pyproject))
    header = [
        f"# The lower bounds {pyproject_path.name} declares, each pinned exactly",
        "# (written by scripts/floors.py; install with pip's -c).",
    ]
    if unbounded:
        header.append(f"# No lower bound declared: {', '.join(unbounded)}")
    return "\n".join([*header, *lines]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pyproject", nargs="?", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("-o", "--output", type=Path, help="write here (default: standard output)")
    args = parser.parse_args(argv)
    try:
        text = render(args.pyproject)
    except (OSError, tomllib.TOMLDecodeError, FloorError) as err:
        print(f"floors: {args.pyproject}: {err}", file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
