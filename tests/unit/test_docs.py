"""The README and the documentation site hold what a newcomer needs, and their links hold on a
package index page. (tests/integration/test_docs_examples.py runs their examples; `make docs`
builds the site with --strict.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jwt_revocation.shared import RevocationSettings
from tests.docs_examples import (
    ROOT,
    RUN_LANGUAGES,
    SHOWN_LANGUAGES,
    all_examples,
    console_steps,
    examples,
)

README = ROOT / "README.md"
DOCS = ROOT / "docs"
DOCS_URL = "https://jwt-revocation.readthedocs.io/en/latest/"
REPOSITORY_URL = "https://github.com/jwt-revocation/jwt-revocation/blob/main/"
REPOSITORY = "https://github.com/jwt-revocation/jwt-revocation"

_MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
_AUTOLINK = re.compile(r"<(https?://[^>\s]+)>")
_HTML_LINK = re.compile(r"""(?:href|src)=["']([^"']+)["']""")


def _links(text: str) -> list[str]:
    return [
        *_MARKDOWN_LINK.findall(text),
        *_AUTOLINK.findall(text),
        *_HTML_LINK.findall(text),
    ]


def test_readme_is_at_most_400_lines() -> None:
    assert len(README.read_text().splitlines()) <= 400


def test_every_readme_link_is_absolute_and_leads_somewhere_that_exists() -> None:
    links = _links(README.read_text())
    assert links
    for link in links:
        assert link.startswith("https://"), f"a relative link breaks on a package index: {link}"
        if link.startswith(DOCS_URL):
            path, _, anchor = link.removeprefix(DOCS_URL).partition("#")
            page = DOCS / (f"{path.rstrip('/')}.md" if path else "index.md")
            assert page.is_file(), f"{link}: no page {page.relative_to(ROOT)}"
            if anchor:
                assert anchor in _anchors(page), f"{link}: no heading #{anchor} on that page"
        elif link.startswith(REPOSITORY_URL):
            target = ROOT / link.removeprefix(REPOSITORY_URL).partition("#")[0]
            assert target.exists(), f"{link}: no {target.relative_to(ROOT)} in the repository"
        else:
            assert link == REPOSITORY or link.startswith("https://pypi.org/"), link


def _anchors(page: Path) -> set[str]:
    """The ids MkDocs' toc gives the page's headings (lower case, punctuation dropped)."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.MULTILINE)
    return {
        re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower()) for title in headings
    }


def test_docs_pages_link_to_repository_files_absolutely() -> None:
    """A page that links outside docs/ would break the strict build or the published site."""
    for page in DOCS.rglob("*.md"):
        for link in _links(page.read_text()):
            if link.startswith(("https://", "http://", "#", "mailto:")):
                continue
            assert link.partition("#")[0].endswith(".md"), f"{page.name}: {link}"
            assert (page.parent / link.partition("#")[0]).is_file(), f"{page.name}: {link}"


def test_every_fenced_block_names_a_language_that_is_run_or_shown() -> None:
    for example in all_examples():
        assert example.language in RUN_LANGUAGES | SHOWN_LANGUAGES, (
            f"{example.where}: ```{example.language or ''} is neither run nor a shown language"
        )
        assert example.mode in {"run", "skip", "background", "django-settings", "output"}, (
            example.where
        )
        if example.mode == "output":
            assert example.language == "text", example.where
        if example.language == "console":
            assert console_steps(example.code), example.where


def test_the_readme_quickstart_is_the_docs_quickstart() -> None:
    """One quickstart: what the README shows is what the site's page shows."""
    readme = [example.code for example in examples(README) if example.runs]
    assert any(example.mode == "output" for example in examples(DOCS / "quickstart.md"))
    quickstart = [example.code for example in examples(DOCS / "quickstart.md") if example.runs]
    assert quickstart
    assert all(code in readme for code in quickstart)


def test_the_readme_quickstart_reaches_the_local_broker() -> None:
    text = README.read_text()
    assert "kafka:9092" not in text
    assert "127.0.0.1:9092" in text


def _configuration_names() -> set[str]:
    table = (DOCS / "configuration.md").read_text()
    return set(re.findall(r"^\| `(JWT_REVOCATION_[A-Z0-9_]+)`", table, flags=re.MULTILINE))


def test_the_configuration_table_names_every_setting_and_no_other() -> None:
    fields = {f"JWT_REVOCATION_{name.upper()}" for name in RevocationSettings.model_fields}
    documented = _configuration_names()
    assert fields - documented == set(), "settings missing from docs/configuration.md"
    # A few are read by one command alone, outside the settings (JWT_REVOCATION_VERIFY_KEY).
    source = "\n".join(
        path.read_text()
        for folder in ("shared", "producer", "consumer", "cli", "django_integration")
        for path in (ROOT / folder).rglob("*.py")
    )
    unknown = {name for name in documented - fields if f'"{name}"' not in source}
    assert unknown == set(), "docs/configuration.md names settings the package never reads"


def _services_value(name: str) -> str:
    script = (ROOT / "scripts" / "services.sh").read_text()
    match = re.search(rf"^{name}=(\S+)$", script, flags=re.MULTILINE)
    assert match is not None, name
    return match.group(1)


@pytest.mark.parametrize(
    ("shown", "variable"),
    [("password", "PG_PASSWORD"), ("database", "PG_DATABASE"), ("port", "PG_PORT")],
)
def test_local_services_page_gives_postgres_settings_of_the_script(
    shown: str, variable: str
) -> None:
    page = (DOCS / "local-services.md").read_text()
    value = _services_value(variable)
    assert value in page, f"docs/local-services.md must give PostgreSQL's {shown} {value}"
    url = "postgresql+psycopg://postgres:{}@127.0.0.1:{}/{}".format(
        _services_value("PG_PASSWORD"), _services_value("PG_PORT"), _services_value("PG_DATABASE")
    )
    assert url in page


def test_every_setting_the_pages_name_is_in_the_configuration_table() -> None:
    """A page that names a setting names one the configuration page explains (a ``_*`` prefix
    such as ``JWT_REVOCATION_KAFKA_*`` stands for a group)."""
    documented = _configuration_names() | {
        "JWT_REVOCATION_SERVICES_DIR",  # scripts/services.sh
        "JWT_REVOCATION_CACHE_DIR",  # scripts/services.sh
    }
    for page in [README, *DOCS.rglob("*.md")]:
        for name in re.findall(r"JWT_REVOCATION_[A-Z0-9_]+", page.read_text()):
            if not name.endswith("_"):
                assert name in documented, f"{page.name}: {name} is not in docs/configuration.md"
