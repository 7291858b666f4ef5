"""README is the front page and its links hold; the documentation site is checked by
``mkdocs build --strict`` in CI (.ci/run), which fails on a broken link or anchor."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_a_front_page_under_250_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < 250, f"README.md has {len(lines)} lines: move detail into docs/"


def test_every_relative_link_of_the_readme_names_a_file_that_exists():
    text = (ROOT / "README.md").read_text()
    links = [link.split("#")[0] for link in re.findall(r"\]\(([^)]+)\)", text) if "://" not in link]
    assert len(links) >= 10, links
    missing = [link for link in links if link and not (ROOT / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_every_docs_page_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    assert pages, "docs/ has no pages"
    missing = [page for page in pages if f": {page}" not in nav]
    assert not missing, f"pages not listed in mkdocs.yml's nav: {missing}"
