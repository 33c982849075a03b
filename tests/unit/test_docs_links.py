"""The repository stands alone (issue 13): every relative link in README.md and docs/ resolves to a
file inside the repository.

Before, the README linked `../shared/seed/` and `../shared/DESIGN.md`, which a clone does not have.
Links inside code (fenced blocks, `inline code`) are not links and are skipped; web links are not
checked (no network in unit tests).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def relative_links(text: str) -> list[str]:
    """The relative targets of Markdown links and images, outside code."""
    prose = INLINE.sub("", FENCE.sub("", text))
    out = []
    for target in LINK.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http:, mailto:, ... and anchors within the page
        out.append(target)
    return out


def test_the_extractor_sees_links_and_skips_code() -> None:
    text = "see [a](docs/a.md#x) and ![i](img.png)\n`[no](nope.md)`\n```\n[no](nope2.md)\n```\n[w](https://x.org) [h](#top)"
    assert relative_links(text) == ["docs/a.md#x", "img.png"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_inside_the_repository(doc: Path) -> None:
    broken = []
    for target in relative_links(doc.read_text(encoding="utf-8")):
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(REPO) or not path.exists():
            broken.append(target)
    assert broken == [], f"{doc.relative_to(REPO)} links outside the repository or to nothing: {broken}"


def test_nothing_points_at_the_shared_folder_of_the_old_workspace() -> None:
    for doc in DOCS:
        assert "../shared/" not in doc.read_text(encoding="utf-8"), doc
