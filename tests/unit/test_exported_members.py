"""Each package's ``__all__``, which package may import which, and that every exported
exception is in the ``RevocationError`` tree."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import jwt_revocation
import jwt_revocation.consumer
import jwt_revocation.django
import jwt_revocation.django.outbox
import jwt_revocation.producer
import jwt_revocation.producer.outbox
import jwt_revocation.shared
from jwt_revocation.shared import RevocationError

PACKAGES = [
    jwt_revocation,
    jwt_revocation.shared,
    jwt_revocation.producer,
    jwt_revocation.consumer,
    jwt_revocation.django,
    jwt_revocation.django.outbox,
    jwt_revocation.producer.outbox,
]
PACKAGE_IDS = [package.__name__ for package in PACKAGES]


def _isort_key(name: str) -> tuple[int, list[tuple[int, str]]]:
    """The order ruff's RUF022 keeps ``__all__`` in: CONSTANTS, then Classes, then the rest.

    Within each group a natural sort: digit runs compare as numbers.
    """
    if len(name) > 1 and name.upper() == name:
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    parts = [(int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"(\d+)", name) if p]
    return group, parts


def test_isort_key_orders_constants_then_classes_then_the_rest() -> None:
    names = ["decode_event", "TokenRevoked", "MAX_RECORD_BYTES", "Item10", "Item9", "Duration"]

    assert sorted(names, key=_isort_key) == [
        "MAX_RECORD_BYTES",
        "Duration",
        "Item9",
        "Item10",
        "TokenRevoked",
        "decode_event",
    ]


@pytest.mark.parametrize("package", PACKAGES, ids=PACKAGE_IDS)
def test_all_is_sorted_without_duplicates(package: types.ModuleType) -> None:
    exported: list[str] = list(package.__all__)

    assert exported == sorted(exported, key=_isort_key)
    assert len(exported) == len(set(exported))


@pytest.mark.parametrize("package", PACKAGES, ids=PACKAGE_IDS)
def test_every_name_in_all_exists(package: types.ModuleType) -> None:
    missing = [name for name in package.__all__ if not hasattr(package, name)]

    assert missing == []


def _public_names(package: types.ModuleType) -> set[str]:
    """The names ``dir()`` shows that are neither private nor modules; a name a package
    exports lazily (PEP 562) is imported here, so a broken lazy export fails too."""
    return {
        name
        for name in dir(package)
        if not name.startswith("_") and not isinstance(getattr(package, name), types.ModuleType)
    }


@pytest.mark.parametrize("package", PACKAGES, ids=PACKAGE_IDS)
def test_every_public_name_is_in_all(package: types.ModuleType) -> None:
    public = _public_names(package)

    assert public, "the package namespace has no public names at all"
    assert sorted(public - set(package.__all__)) == []
    assert sorted(set(package.__all__) - public) == []


@pytest.mark.parametrize("package", PACKAGES, ids=PACKAGE_IDS)
def test_every_exported_exception_is_a_revocation_error(package: types.ModuleType) -> None:
    exported = [getattr(package, name) for name in package.__all__]
    exceptions = [v for v in exported if isinstance(v, type) and issubclass(v, BaseException)]

    assert [e.__name__ for e in exceptions if not issubclass(e, RevocationError)] == []


def test_every_package_exports_some_exception() -> None:
    """The walk above sees the errors: each side's package exports its own."""
    for package in (jwt_revocation, jwt_revocation.shared, jwt_revocation.producer):
        assert any(
            isinstance(v, type) and issubclass(v, RevocationError)
            for v in (getattr(package, name) for name in package.__all__)
        ), package.__name__


def test_the_plumbing_errors_are_in_the_tree_too() -> None:
    from jwt_revocation.shared._http import BodyError

    assert issubclass(BodyError, RevocationError)


def test_a_name_that_left_all_still_resolves_with_a_deprecation_warning() -> None:
    from jwt_revocation.shared._http import json_app

    with pytest.warns(DeprecationWarning, match=r"import it from jwt_revocation\.shared\._http"):
        moved = jwt_revocation.shared.json_app

    assert moved is json_app
    assert "json_app" not in dir(jwt_revocation.shared)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        _ = jwt_revocation.no_such_name


def test_the_root_package_imports_no_part_until_a_name_is_used() -> None:
    """``import jwt_revocation`` loads neither a subpackage nor a third-party library."""
    code = (
        "import sys, jwt_revocation; "
        "print(sorted(m for m in sys.modules if m.startswith(('jwt_revocation', 'jwt', "
        "'pydantic', 'kafka'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert loaded.strip() == "['jwt_revocation', 'jwt_revocation._lazy']"


def test_the_version_is_the_installed_distribution_s() -> None:
    from importlib.metadata import version

    assert jwt_revocation.__version__ == version("jwt-revocation")


# -- import direction ---------------------------------------------------------------------


def _imported_modules(source: str, package: str) -> set[str]:
    """Every module a source file of ``package`` imports, relative imports made absolute.

    ``from a import b`` counts both ``a`` and ``a.b``: ``b`` may be a submodule.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _imports_of_package(package: types.ModuleType) -> dict[str, set[str]]:
    """Source file name -> modules it imports, for every ``.py`` file of ``package``."""
    assert package.__file__ is not None
    folder = Path(package.__file__).parent
    files = sorted(folder.rglob("*.py"))
    assert files, f"no source files found under {folder}"
    imports = {}
    for path in files:
        relative = path.relative_to(folder)
        subpackage = ".".join([package.__name__, *relative.parent.parts])
        imports[str(relative)] = _imported_modules(path.read_text(encoding="utf-8"), subpackage)
    return imports


def _offending(package: types.ModuleType, forbidden: list[str]) -> list[str]:
    offences = []
    for file, modules in _imports_of_package(package).items():
        for module in sorted(modules):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                offences.append(f"{package.__name__}/{file} imports {module}")
    return offences


@pytest.mark.parametrize(
    ("source", "package", "expected"),
    [
        ("import jwt_revocation.consumer", "jwt_revocation.shared", "jwt_revocation.consumer"),
        ("from jwt_revocation import consumer", "jwt_revocation.shared", "jwt_revocation.consumer"),
        ("from ..consumer import X", "jwt_revocation.shared", "jwt_revocation.consumer"),
        ("from .. import producer", "jwt_revocation.shared", "jwt_revocation.producer"),
        ("from ._events import X", "jwt_revocation.shared", "jwt_revocation.shared._events"),
        (
            "def f():\n    from jwt_revocation.producer._publisher import X",
            "jwt_revocation.consumer",
            "jwt_revocation.producer._publisher",
        ),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import jwt_revocation.consumer",
            "jwt_revocation.shared",
            "jwt_revocation.consumer",
        ),
    ],
)
def test_import_scanner_sees_every_form_of_import(source: str, package: str, expected: str) -> None:
    assert expected in _imported_modules(source, package)


def test_the_scan_sees_the_real_imports() -> None:
    producer_imports = set().union(*_imports_of_package(jwt_revocation.producer).values())
    consumer_imports = set().union(*_imports_of_package(jwt_revocation.consumer).values())

    assert "jwt_revocation.shared" in producer_imports
    assert "jwt_revocation.shared" in consumer_imports
    assert "jwt_revocation.consumer._state" in consumer_imports
    assert "__init__.py" in _imports_of_package(jwt_revocation.shared)


def test_shared_imports_neither_producer_nor_consumer() -> None:
    forbidden = ["jwt_revocation.producer", "jwt_revocation.consumer"]

    assert _offending(jwt_revocation.shared, forbidden) == []


def test_producer_does_not_import_consumer() -> None:
    assert _offending(jwt_revocation.producer, ["jwt_revocation.consumer"]) == []


def test_consumer_does_not_import_producer() -> None:
    assert _offending(jwt_revocation.consumer, ["jwt_revocation.producer"]) == []


def test_no_part_imports_the_django_integration() -> None:
    forbidden = ["jwt_revocation.django"]
    parts = [jwt_revocation.shared, jwt_revocation.producer, jwt_revocation.consumer]

    assert [offence for part in parts for offence in _offending(part, forbidden)] == []


def test_the_django_integration_imports_producer_consumer_and_shared_only() -> None:
    imports = set().union(*_imports_of_package(jwt_revocation.django).values())
    ours = {m for m in imports if m.startswith("jwt_revocation.")}
    allowed = ("shared", "producer", "consumer", "django")

    assert {"jwt_revocation.producer", "jwt_revocation.consumer"} <= ours
    assert "outbox/management/commands/jwt_revocation_relay.py" in _imports_of_package(
        jwt_revocation.django
    )
    assert sorted(m for m in ours if m.split(".")[1] not in allowed) == []
    # The folder's own name is no module users have: it would import a second copy.
    assert sorted(m for m in imports if m.split(".")[0] == "django_integration") == []


# -- what the documentation imports ---------------------------------------------------------

_DOC_IMPORT = re.compile(
    r"from (jwt_revocation[\w.]*) import (?:\(([^)]*)\)|([\w, ]+))", flags=re.MULTILINE
)


def _documented_imports() -> list[tuple[str, str]]:
    root = Path(__file__).resolve().parents[2]
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    found: set[tuple[str, str]] = set()
    for page in pages:
        if page.exists():
            for module, grouped, inline in _DOC_IMPORT.findall(page.read_text(encoding="utf-8")):
                names = (grouped or inline).replace("\n", " ").split(",")
                found.update((module, name.strip()) for name in names if name.strip())
    return sorted(found)


def test_the_documentation_imports_something() -> None:
    """The pages import from the front door, and from a subpackage what only it exports."""
    imports = _documented_imports()
    assert ("jwt_revocation", "RevocationVerifier") in imports
    assert ("jwt_revocation.consumer", "SidecarOptions") in imports


@pytest.mark.parametrize(("module", "name"), _documented_imports())
def test_every_name_the_documentation_imports_is_public_where_it_says(
    module: str, name: str
) -> None:
    """What users copied from the README keeps working, with no deprecation warning."""
    imported = importlib.import_module(module)

    assert name in getattr(imported, "__all__", [name])
    assert not name.startswith("_")
    assert getattr(imported, name) is not None
