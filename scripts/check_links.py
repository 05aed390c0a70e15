"""Check that every in-book link with an anchor (``page.html#id``) lands on an element with that id.

Run after a build (``scripts/book.sh`` does)::

    python scripts/check_links.py [_build/html]

Sphinx's ``-W`` catches broken cross-references in the sources, but not links that extensions
write into the HTML: ``viewcode``'s "[docs]" links from a module's source page back to its API
page pointed at an anchor that did not exist when an object was documented on two pages.
Prints each broken link and exits 1 if there is one.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HREF = re.compile(r'href="([^"#:?]+\.html)#([^"]+)"')
ID = re.compile(r'\bid="([^"]+)"')


def broken_links(html_root: Path) -> list[tuple[str, str]]:
    """``(page, href)`` of every relative ``*.html#anchor`` link whose target page lacks the id."""
    ids: dict[Path, set[str]] = {}

    def ids_of(page: Path) -> set[str]:
        if page not in ids:
            ids[page] = set(ID.findall(page.read_text(encoding="utf-8", errors="replace"))) if page.is_file() else set()
        return ids[page]

    broken = []
    for page in sorted(html_root.rglob("*.html")):
        text = page.read_text(encoding="utf-8", errors="replace")
        for target, anchor in set(HREF.findall(text)):
            if anchor not in ids_of((page.parent / target).resolve()):
                broken.append((str(page.relative_to(html_root)), f"{target}#{anchor}"))
    return broken


def main(argv: list[str] | None = None) -> int:
    """Check the built book in ``argv[0]`` (default ``_build/html``); exit code 1 on a broken link."""
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else "_build/html")
    if not root.is_dir():
        print(f"check_links: {root} is not a built book", file=sys.stderr)
        return 2
    broken = broken_links(root)
    for page, href in broken:
        print(f"check_links: {page}: broken link {href}", file=sys.stderr)
    print(f"check_links: {len(broken)} broken anchor link(s) in {root}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
