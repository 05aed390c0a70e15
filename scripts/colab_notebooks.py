"""Write the Colab copies of the chapters: plain Jupyter notebooks whose Markdown Colab renders.

Colab renders plain Markdown, so the MyST of the book's chapters would show there as source text.
Each copy ``colab/book/<chapter>.ipynb`` is its chapter with every Markdown cell rewritten:

- ``{cite}`` / ``{cite:p}`` -> "[Author et al., 2017]", ``{cite:t}`` -> "Author et al. [2017]" (as the book),
  and a "References" cell at the end listing what the chapter cites (from ``book/references.bib``);
- ``{numref}`` -> "Figure N", numbered as the book numbers its figures (Sphinx numbers them in
  the order of the table of contents, continuing from chapter to chapter when the toctree is not
  numbered), and a "**Figure N.** caption" cell after every figure's code cell;
- ``{doc}`` and the API roles (``{func}``, ``{class}``, ``{mod}``, ...) -> links to the published
  book (``https://<owner>.github.io/<name>/`` of ``_config.yml``'s ``repository.url``);
- admonitions and other directives -> block quotes with a bold title;
- ``{glue}`` roles (the chapters have none: ``tests/test_colab.py``) -> the variable's name and a
  note that the code above computes it (the copies are stored without outputs).

Code cells stay exactly as in the chapter; the first code cell (the Colab install) is the one
:func:`install_cell` writes, for the URL in ``_config.yml``. An unknown role or directive is an
error naming the chapter, so nothing MyST reaches a copy unconverted.

Usage::

    python scripts/colab_notebooks.py                  # (re)write colab/book/*.ipynb, README's links
    python scripts/colab_notebooks.py --check          # exit 1 if a copy or the links are stale
    python scripts/colab_notebooks.py --install-cells  # also rewrite the chapters' install cells

The launch buttons open the copies (``_config.yml``: ``repository.path_to_book: colab``), and so
do the README's Colab links, written here between its ``colab-links`` markers. The repository
URL has one home, ``_config.yml``'s ``repository.url``: the copies' and chapters' install cells
and the README's links are written from it.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml
from pybtex.database import parse_file
from pybtex.richtext import Text

ROOT = Path(__file__).resolve().parents[1]
#: Where the copies live, relative to the repository (the launch buttons' ``path_to_book``).
COPIES = "colab"

#: The Colab install cell, the first code cell of every chapter and of every copy.
INSTALL_CELL = '''\
# In Colab only: install b2b (Colab keeps its own torch, numpy and IPython).
import os, sys
if "google.colab" in sys.modules:
    B2B_PIP_URL = os.environ.get("B2B_PIP_URL", "git+{url}")
    # Audio renderer; where it cannot be installed (no wheel, failed compile), b2b plays notes with numpy.
    %pip install -q --no-deps tinysoundfont
    %pip install -q "b2b[notebook] @ $B2B_PIP_URL"
    try:
        import b2b
    except ImportError as error:
        raise RuntimeError(
            f"Installing b2b from {{B2B_PIP_URL}} failed ({{error}}); pip's message is above. "
            "Check the repository URL, run this cell again, or install by hand: "
            f"pip install 'b2b[notebook] @ {{B2B_PIP_URL}}'") from None'''

API_ROLES = {"func", "meth", "class", "mod", "attr", "data", "obj", "exc", "py:func", "py:class",
             "py:mod", "py:meth", "py:attr", "py:data", "py:obj", "py:exc"}
ROLE = re.compile(r"\{([a-z:]+)\}`([^`]*)`")
FENCE = re.compile(r"^(\s*)(`{3,}|:{3,})\{([\w:-]+)\}\s*(.*)$")


@dataclass
class Book:
    """What the rewriting needs to know about the whole book."""

    repo_url: str  # https://github.com/<owner>/<name>
    pages_url: str  # https://<owner>.github.io/<name>/
    figures: dict[str, int]  # figure label -> the book's figure number
    titles: dict[str, str]  # docname ("book/02_gans") -> title
    bib: dict = field(default_factory=dict)  # key -> pybtex Entry


def repository_url(root: Path = ROOT) -> str:
    """The one home of the repository URL: ``repository.url`` of ``_config.yml``."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    url = str(config.get("repository", {}).get("url", "")).rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"{root / '_config.yml'}: repository.url should be https://github.com/<owner>/<name>, got {url!r}")
    return url


def pages_url(repo_url: str) -> str:
    """GitHub Pages address of a repository: ``https://github.com/o/n`` -> ``https://o.github.io/n/``."""
    owner, name = repo_url.rstrip("/").split("/")[-2:]
    return f"https://{owner.lower()}.github.io/{name}/"


def install_cell(repo_url: str) -> str:
    """Source of the Colab install cell for a repository URL (``https://github.com/o/n``)."""
    return INSTALL_CELL.format(url=repo_url)


def toc_docnames(root: Path = ROOT) -> list[str]:
    """Every document of ``_toc.yml`` in reading order (root first), as docnames without suffix."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections", []))
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        walk(part.get("chapters", []))
    return names


def _doc_figures(path: Path) -> list[str]:
    """Labels of the numbered figures of one document, in order (code cells' ``mystnb.figure.name``,
    Markdown ``{figure}`` directives with ``:name:``)."""
    if path.suffix == ".ipynb":
        cells = nbformat.read(path, as_version=4).cells
    else:
        cells = [nbformat.v4.new_markdown_cell(path.read_text(encoding="utf-8"))]
    labels = []
    for cell in cells:
        if cell.cell_type == "code":
            name = cell.metadata.get("mystnb", {}).get("figure", {}).get("name")
            hidden = {"remove-output", "remove-cell"} & set(cell.metadata.get("tags", []))
            if name and not hidden:
                labels.append(name)
        else:
            labels += re.findall(r"^[`:]{3,}\{figure\}.*\n(?:\s*:[\w-]+:.*\n)*?\s*:name:\s*(\S+)", cell.source, re.M)
    return labels


def figure_numbers(root: Path = ROOT) -> dict[str, int]:
    """The book's figure numbers: one counter over the documents in table-of-contents order."""
    numbers: dict[str, int] = {}
    for doc in toc_docnames(root):
        for suffix in (".ipynb", ".md"):
            if (root / (doc + suffix)).is_file():
                for label in _doc_figures(root / (doc + suffix)):
                    numbers[label] = len(numbers) + 1
                break
    return numbers


def _title(path: Path) -> str:
    text = (path.read_text(encoding="utf-8") if path.suffix == ".md" else
            next(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"))
    match = re.search(r"^#\s+(.+)$", text, re.M)
    return match.group(1).strip() if match else path.stem


def load_book(root: Path = ROOT) -> Book:
    """Read ``_config.yml``, ``_toc.yml``, the chapters' figures and titles, and the bibliography."""
    url = repository_url(root)
    titles = {}
    for doc in toc_docnames(root):
        for suffix in (".ipynb", ".md"):
            if (root / (doc + suffix)).is_file():
                titles[doc] = _title(root / (doc + suffix))
                break
    bib = dict(parse_file(str(root / "book" / "references.bib")).entries)
    return Book(url, pages_url(url), figure_numbers(root), titles, bib)


# --- citations ------------------------------------------------------------------------------

def _latex(text: str) -> str:
    return Text.from_latex(text).render_as("text")


def _authors(entry) -> list:
    return entry.persons.get("author") or entry.persons.get("editor") or []


def cite_label(entry) -> tuple[str, str]:
    """(authors, year) as the book's author-year style writes them: "A", "A and B", "A et al."."""
    last = [_latex(" ".join(p.last_names)) for p in _authors(entry)]
    who = last[0] if len(last) == 1 else " and ".join(last) if len(last) == 2 else f"{last[0]} et al."
    return who, entry.fields.get("year", "n.d.")


def reference_line(entry) -> str:
    """One Markdown line of the reference list: authors (year). Title. Venue. Note. URL."""
    names = [_latex(" ".join(p.first_names + p.middle_names + p.prelast_names + p.last_names))
             for p in _authors(entry)]
    who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    f = entry.fields
    parts = [f"{who} ({f.get('year', 'n.d.')}). {_latex(f.get('title', ''))}."]
    venue = f.get("booktitle") or f.get("journal") or f.get("school") or f.get("howpublished")
    if venue:
        extra = ", ".join(x for x in (f.get("volume"), f.get("pages", "").replace("--", "–")) if x)
        parts.append(f"*{_latex(venue)}*" + (f", {extra}." if extra else "."))
    if f.get("note"):
        parts.append(_latex(f["note"]).rstrip(".") + ".")
    if f.get("url"):
        parts.append(f"<{f['url']}>")
    return " ".join(parts)


# --- Markdown -------------------------------------------------------------------------------

def _api_link(book: Book, role: str, target: str) -> str:
    title = None
    if m := re.fullmatch(r"(.*?)\s*<(.+)>", target):
        title, target = m.group(1), m.group(2)
    short = target.startswith("~")
    target = target.lstrip("~.")
    shown = title or (target.rsplit(".", 1)[-1] if short else target)
    if title is None and role.split(":")[-1] in {"func", "meth"}:
        shown += "()"
    parts = target.split(".")
    # the module is the longest prefix that is a file of the package (b2b.model.networks.build ->
    # b2b/model/networks.py); its page is named by its last part (book/api/networks.md)
    for k in range(len(parts), 1, -1):
        module = ROOT.joinpath(*parts[:k]).with_suffix(".py")
        if parts[0] == "b2b" and module.is_file() and (ROOT / "book" / "api" / f"{parts[k - 1]}.md").is_file():
            anchor = "" if role.endswith("mod") else f"#{target}"
            return f"[`{shown}`]({book.pages_url}book/api/{parts[k - 1]}.html{anchor})"
    return f"`{shown}`"


def _role(book: Book, doc: str, role: str, text: str, cited: list[str]) -> str:
    if role in {"cite", "cite:p", "cite:t", "cite:ps", "cite:ts"}:
        keys = [k.strip() for k in text.split(",") if k.strip()]
        for key in keys:
            if key not in book.bib:
                raise ValueError(f"{doc}: {{cite}}`{key}` is not in book/references.bib")
            if key not in cited:
                cited.append(key)
        labels = [cite_label(book.bib[k]) for k in keys]
        if role.startswith("cite:t"):
            return "; ".join(f"{who} [{year}]" for who, year in labels)
        return "[" + "; ".join(f"{who}, {year}" for who, year in labels) + "]"
    if role == "numref":
        label, fmt = text, "Figure {number}"
        if m := re.fullmatch(r"(.*?)\s*<(.+)>", text):
            fmt, label = m.group(1).replace("%s", "{number}").replace("{name}", "{number}"), m.group(2)
        if label not in book.figures:
            raise ValueError(f"{doc}: {{numref}}`{text}` names no figure of the book")
        return fmt.format(number=book.figures[label])
    if role == "doc":
        title = None
        if m := re.fullmatch(r"(.*?)\s*<(.+)>", text):
            title, text = m.group(1), m.group(2)
        target = text.lstrip("/") if text.startswith("/") else str(Path(doc).parent / text)
        if target not in book.titles:
            raise ValueError(f"{doc}: {{doc}}`{text}` is not a page of the book")
        return f"[{title or book.titles[target]}]({book.pages_url}{target}.html)"
    if role in API_ROLES:
        return _api_link(book, role, text)
    if role.startswith("glue"):
        name = text.split(":")[0]
        return f"`{name}` (a value the code above computes; run it to see it)"
    raise ValueError(f"{doc}: Colab cannot show the role {{{role}}}`{text}`; teach scripts/colab_notebooks.py about it")


def _inline(book: Book, doc: str, text: str, cited: list[str]) -> str:
    """Rewrite the roles of one stretch of Markdown outside code fences."""
    return ROLE.sub(lambda m: _role(book, doc, m.group(1), m.group(2), cited), text)


def convert_markdown(book: Book, doc: str, source: str, cited: list[str]) -> str:
    """One Markdown cell's MyST as plain Markdown (roles, directives, targets); appends citation keys to ``cited``."""
    lines, out, i = source.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"^\s*\([\w.:-]+\)=\s*$", line):  # a MyST target: nothing to show
            i += 1
            continue
        if m := FENCE.match(line):
            indent, fence, name, args = m.groups()
            body, i = [], i + 1
            while i < len(lines) and not (lines[i].strip().startswith(fence[0] * len(fence))
                                          and lines[i].strip().strip(fence[0]) == ""):
                body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
                i += 1
            i += 1
            while body and re.match(r"^:[\w-]+:", body[0]):  # directive options
                body.pop(0)
            out += [indent + q for q in _directive(book, doc, name, args, "\n".join(body), cited).split("\n")]
            continue
        if m := re.match(r"^(\s*)(`{3,}|~{3,})", line):  # a plain code fence: copied as it is
            fence, out = m.group(2), out + [line]
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                out.append(lines[i])
                i += 1
            if i < len(lines):
                out.append(lines[i])
            i += 1
            continue
        out.append(_inline(book, doc, line, cited))
        i += 1
    return "\n".join(out)


def _directive(book: Book, doc: str, name: str, args: str, body: str, cited: list[str]) -> str:
    if name in {"math"}:
        return "$$\n" + body.strip() + "\n$$"
    if name.startswith("glue") or name in {"bibliography", "code-cell", "eval-rst", "toctree"}:
        raise ValueError(f"{doc}: Colab cannot show the directive {{{name}}}; teach scripts/colab_notebooks.py about it")
    title = _inline(book, doc, args.strip(), cited) if args.strip() else name.replace("-", " ").capitalize()
    inner = convert_markdown(book, doc, body.strip("\n"), cited)
    quoted = "\n".join(("> " + q) if q.strip() else ">" for q in inner.split("\n"))
    return f"> **{title}**\n>\n{quoted}"


# --- notebooks ------------------------------------------------------------------------------

def colab_copy(book: Book, path: Path, root: Path = ROOT) -> nbformat.NotebookNode:
    """The Colab copy of one chapter (a new notebook; the chapter file is not touched)."""
    nb = nbformat.read(path, as_version=4)
    doc = path.relative_to(root).with_suffix("").as_posix()
    cited: list[str] = []
    cells, seen_code = [], False
    for cell in nb.cells:
        cell = copy.deepcopy(cell)
        for key in ("execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        if cell.cell_type == "markdown":
            cell.source = convert_markdown(book, doc, cell.source, cited)
        elif cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if not seen_code:
                cell.source, seen_code = install_cell(book.repo_url), True
        cells.append(cell)
        figure = cell.metadata.get("mystnb", {}).get("figure", {}) if cell.cell_type == "code" else {}
        if figure.get("name") in book.figures:
            caption = convert_markdown(book, doc, figure.get("caption", ""), cited)
            number = book.figures[figure["name"]]
            cells.append(nbformat.v4.new_markdown_cell(f"**Figure {number}.** {caption}".strip(),
                                                       id=f"{figure['name']}-caption"[:64]))
        if len(cells) == 1 and cell.cell_type == "markdown":
            page = f"{book.pages_url}{doc}.html"
            cells.append(nbformat.v4.new_markdown_cell(
                f"*This is the Colab copy of a chapter of the book [From Bytes to Beats]({book.pages_url}), "
                f"made from [`{doc}.ipynb`]({book.repo_url}/blob/main/{doc}.ipynb) by "
                f"`scripts/colab_notebooks.py`; the chapter as published is [here]({page}). "
                "Run the first code cell before the others: it installs `b2b`.*", id="colab-copy-note"))
    if cited:
        refs = sorted(cited, key=lambda k: (cite_label(book.bib[k]), k))
        cells.append(nbformat.v4.new_markdown_cell(
            "## References\n\n" + "\n".join(f"- {reference_line(book.bib[k])}" for k in refs), id="colab-references"))
    nb.cells = cells
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}, "colab": {"provenance": []}}
    return nb


def chapters(root: Path = ROOT) -> list[Path]:
    """The notebooks that get a Colab copy: every ``book/*.ipynb`` (the chapters and the appendix,
    which has a launch button too)."""
    return sorted((root / "book").glob("*.ipynb"))


def copy_path(chapter: Path, root: Path = ROOT) -> Path:
    """Where the Colab copy of a chapter lives: ``colab/book/<chapter>.ipynb``."""
    return root / COPIES / chapter.relative_to(root)


def render(nb: nbformat.NotebookNode) -> str:
    """A notebook as the exact text written to disk (so a stale copy can be told by comparing text)."""
    return nbformat.writes(nb) + "\n"


README_BLOCK = re.compile(r"(<!-- colab-links: written by scripts/colab_notebooks.py -->\n)(?:.*?\n)?(<!-- /colab-links -->)", re.S)


def colab_link(book: Book, chapter: Path, root: Path = ROOT, branch: str = "main") -> str:
    """The address that opens a chapter's Colab copy in Colab."""
    owner_name = book.repo_url.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_name}/blob/{branch}/{COPIES}/{chapter.relative_to(root).as_posix()}"


def readme_with_links(book: Book, readme: str, root: Path = ROOT) -> str:
    """README text with its Colab link list (between the colab-links markers) written for ``book``."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    branch = config.get("repository", {}).get("branch", "main")
    lines = [f"- [{book.titles[p.relative_to(root).with_suffix('').as_posix()]}]({colab_link(book, p, root, branch)})"
             for p in chapters(root)]
    if not README_BLOCK.search(readme):
        raise ValueError("README.md: no <!-- colab-links: ... --> block for the Colab links")
    return README_BLOCK.sub(lambda m: m.group(1) + "".join(line + "\n" for line in lines) + m.group(2), readme)


def write_install_cells(root: Path = ROOT) -> list[Path]:
    """Rewrite the first code cell of every chapter to :func:`install_cell` (load, change that cell, save)."""
    source, changed = install_cell(repository_url(root)), []
    for path in chapters(root):
        nb = nbformat.read(path, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        if first.source != source:
            first.source = source
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the Colab copies; exit 1 when ``--check`` finds one stale."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a copy is missing or stale")
    p.add_argument("--install-cells", action="store_true",
                   help="first rewrite every chapter's install cell for _config.yml's repository.url")
    args = p.parse_args(argv)
    try:
        if args.install_cells and not args.check:
            for path in write_install_cells():
                print(f"colab copies: rewrote the install cell of {path.relative_to(ROOT)}")
        book = load_book()
        stale = []
        for chapter in chapters():
            text, dest = render(colab_copy(book, chapter)), copy_path(chapter)
            if dest.is_file() and dest.read_text(encoding="utf-8") == text:
                continue
            stale.append(dest.relative_to(ROOT))
            if not args.check:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(text, encoding="utf-8")
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        if readme_with_links(book, readme) != readme:
            stale.append(Path("README.md"))
            if not args.check:
                (ROOT / "README.md").write_text(readme_with_links(book, readme), encoding="utf-8")
    except (ValueError, FileNotFoundError) as error:
        print(f"colab copies: {error}", file=sys.stderr)
        return 2
    if args.check and stale:
        print("colab copies: stale or missing: " + ", ".join(map(str, stale)) +
              "; run `python scripts/colab_notebooks.py`", file=sys.stderr)
        return 1
    print(f"colab copies: {'checked' if args.check else 'wrote'} {len(chapters())} copies in {COPIES}/book and README's links"
          + ("" if args.check else f" ({len(stale)} changed)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
