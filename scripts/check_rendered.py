"""Check the built book for source syntax that did not render: what a reader would see as raw text.

Run after a build (``scripts/book.sh`` does)::

    python scripts/check_rendered.py [_build/html]

Sphinx's ``-W`` does not see these: a code cell's Markdown output parsed as CommonMark prints a
pipe table as text, a ``$$`` equation inside a list item stays dollars and backslashes, and a MyST
role or directive written where MyST does not parse it shows as ``{cite}`` or ```` ```{note} ````.
The check reads the visible text of every built page (everything outside ``<pre>``, ``<code>``,
``<script>``, ``<style>`` and typeset maths) and reports, with the page and line:

- ``table``: a line of text that is a pipe-table row (``| a | b |``);
- ``maths``: ``$...$`` or ``$$`` in text, or a LaTeX command such as ``\\hat``;
- ``role``: a MyST role shown as text (``{doc}`` before code, ``{cite}`...```);
- ``directive``: a fence that opens a directive (```` ```{admonition} ````, ``:::{note}``), in text or
  as a code block's language;
- ``glue``: a glue role or a substitution shown as text (``{glue:text}``, ``{{ key }}``).

Prints each defect and exits 1 if there is one.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple

SKIP = {"pre", "script", "style", "textarea", "svg", "math"}   # text there is meant literally
# Inline code is literal too, but a raw pipe table's cells may hold some: its text counts for
# tables only.
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
BLOCK = {"p", "li", "div", "td", "th", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "dd", "dt", "blockquote",
         "figcaption", "caption", "section", "table", "ul", "ol", "dl", "br", "hr", "nav", "header", "footer"}

TABLE_ROW = re.compile(r"^[ \t]*\|(?:[^|\n]*\|){2,}[ \t]*$", re.M)
DOLLARS = re.compile(r"\$\$|(?<![\\\w$])\$(?=[^\s$])[^$\n]*[^\s$\\]\$(?![\w$])")
LATEX = re.compile(r"\\(?:[A-Za-z]{2,}|[\[\]()])")
ROLE_TEXT = re.compile(r"\{(?!glue)[a-z][\w.+-]*(?::[\w.+-]+)*\}`")
ROLE_END = re.compile(r"\{(?!glue)[a-z][\w.+-]*(?::[\w.+-]+)*\}$")
GLUE = re.compile(r"\{glue(?::[\w-]+)?\}|\{\{\s*[\w.]+\s*\}\}")
FENCE = re.compile(r"(?:```|~~~|:::)\s*\{[a-z][\w:-]*\}")
FENCE_CLASS = re.compile(r"(?:language|highlight)-\{")


class Defect(NamedTuple):
    page: str
    line: int
    kind: str
    text: str


class _Page(HTMLParser):
    """Visible text of one page as ``(line, text)`` pieces, a ``"\\n"`` at every block boundary."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []      # open tags whose text is skipped
        self.code = 0                   # depth of open inline <code> tags
        self.pieces: list[tuple[int, str, bool]] = []   # (line, text, inside inline code)
        self.classes: list[tuple[int, str]] = []
        self.role_before_code: list[tuple[int, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        cls = dict(attrs).get("class") or ""
        self.classes.append((self.getpos()[0], cls))
        if tag == "code" and not self.stack and self.pieces:
            line, text, _ = self.pieces[-1]
            match = ROLE_END.search(text)
            if match:
                self.role_before_code.append((line, match.group(0)))
        if tag in BLOCK:
            self.pieces.append((self.getpos()[0], "\n", False))
        if tag in VOID:
            return
        if self.stack or tag in SKIP or "math" in cls.split():
            self.stack.append(tag)
        elif tag == "code":
            self.code += 1

    def handle_endtag(self, tag: str) -> None:
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
        elif tag == "code" and self.code:
            self.code -= 1
        if tag in BLOCK:
            self.pieces.append((self.getpos()[0], "\n", False))

    def handle_data(self, data: str) -> None:
        if not self.stack and data:
            self.pieces.append((self.getpos()[0], data, self.code > 0))


def page_defects(html: str, page: str = "") -> list[Defect]:
    """Every defect of one built page (its HTML text); ``page`` names it in the results."""
    parser = _Page()
    parser.feed(html)
    parser.close()
    defects = [Defect(page, line, "role", role) for line, role in parser.role_before_code]
    defects += [Defect(page, line, "directive", cls) for line, cls in parser.classes if FENCE_CLASS.search(cls)]
    # join the text (inline code masked out but for tables, same length); remember each piece's line
    text, masked, starts = "", "", []
    for line, piece, code in parser.pieces:
        starts.append((len(text), line))
        text += piece
        masked += "\x01" * len(piece) if code else piece

    def line_at(offset: int) -> int:
        found = starts[0][1] if starts else 0
        for start, line in starts:
            if start > offset:
                break
            found = line
        return found

    for kind, pattern, where in [("table", TABLE_ROW, text), ("maths", DOLLARS, masked), ("maths", LATEX, masked),
                                 ("role", ROLE_TEXT, masked), ("glue", GLUE, masked), ("directive", FENCE, masked)]:
        for match in pattern.finditer(where):
            found = text[match.start():match.end()]
            defects.append(Defect(page, line_at(match.start()), kind, found.strip()[:80]))
    return sorted(dict.fromkeys(defects), key=lambda d: d.line)   # page order, each defect once


def book_defects(html_root: Path) -> list[Defect]:
    """Every defect of every built page under ``html_root`` (``_static`` and ``_sources`` excluded)."""
    defects = []
    for path in sorted(html_root.rglob("*.html")):
        rel = path.relative_to(html_root)
        if rel.parts[0] in ("_static", "_sources"):
            continue
        defects += page_defects(path.read_text(encoding="utf-8", errors="replace"), str(rel))
    return defects


def main(argv: list[str] | None = None) -> int:
    """Check the built book in ``argv[0]`` (default ``_build/html``); exit code 1 on a defect, 2 on no book."""
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else "_build/html")
    if not root.is_dir() or not any(root.glob("*.html")):
        print(f"check_rendered: {root} is not a built book (no .html pages)", file=sys.stderr)
        return 2
    defects = book_defects(root)
    for d in defects:
        print(f"check_rendered: {d.page}:{d.line}: raw {d.kind}: {d.text}", file=sys.stderr)
    pages = len({d.page for d in defects})
    print(f"check_rendered: {len(defects)} unrendered piece(s) of source on {pages} page(s) in {root}")
    return 1 if defects else 0


if __name__ == "__main__":
    sys.exit(main())
