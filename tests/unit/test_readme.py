"""The README is for a newcomer: short, with the reference material in docs/ and every link
there pointing at a page that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_the_readme_stays_short() -> None:
    assert len(README.read_text().splitlines()) <= 150


def test_every_docs_link_leads_to_a_page() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    missing = [f"{page.relative_to(ROOT)} → {target}" for page in pages
               for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", page.read_text())
               if not (page.parent / target).is_file()]
    assert missing == []
