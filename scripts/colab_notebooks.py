"""Write the Colab copies of the chapters: plain Jupyter notebooks whose Markdown Colab renders.

Colab renders plain Markdown, so the MyST of the book's chapters would show there as source text.
Each copy ``colab/book/<chapter>.ipynb`` is its chapter with every Markdown cell rewritten:

- ``{cite}`` / ``{cite:p}`` -> "[Author et al., 2017]", ``{cite:t}`` -> "Author et al. [2017]" (as the book),
  and a "References" cell at the end listing what the chapter cites (from ``book/references.bib``);
- ``{numref}`` -> "Figure 8.3", numbered as the book numbers its figures (Sphinx numbers them per
  chapter in a numbered part of the table of contents, and with one counter over the documents
  outside it), and a "**Figure 8.3.** caption" cell after every figure's code cell;
- ``{doc}`` and the API roles (``{func}``, ``{class}``, ``{mod}``, ...) -> links to the published
  book (``https://<owner>.github.io/<name>/`` of ``_config.yml``'s ``repository.url``);
- admonitions and other directives -> block quotes with a bold title;
- ``{glue}`` roles (the chapters have none: ``tests/test_colab.py``) -> the variable's name and a
  note that the code above computes it (the copies are stored without outputs).

What the book hides or folds, a copy folds the way Colab can:

- a code cell tagged ``hide-input``, ``hide-cell``, ``remove-input`` or ``remove-cell`` is a Colab
  *form*: a first line ``# @title <title>`` (the cell's ``colab_title`` metadata, else "Code of
  Figure N", else its first-line comment, else :data:`FORM_TITLES`) and ``cellView: form``
  metadata, so Colab shows the title and the output, not the code;
- the measured sentences: a folded cell keeps its Markdown outputs (:func:`stored_outputs`; its
  figures, sounds and printed text come when it runs), so the reader reads the sentences before
  running anything. They come
  from an executed build (``--build``, default ``_build``: Jupyter Book's ``jupyter_execute`` and
  its execution cache) whose code cells are exactly the chapter's, else from the copy written
  before when its code is the chapter's. So a copy is reproducible: writing again without a
  build changes nothing; a chapter whose code changed gets no outputs until the next build
  (never a stale sentence); and ``--check`` compares copies without their outputs, so it does
  not depend on a build being at hand;
- a solution the book collapses (an admonition with ``:class: dropdown``, or ``{dropdown}``)
  becomes a ``#### <title>`` heading cell followed by its text; the heading's id (as the cell's
  ``id`` and ``metadata.id``, which Colab reads) is listed in the notebook's
  ``colab.collapsed_sections``, so Colab opens the copy with the section folded: the text and the
  cells after it (the hidden answer code) up to the next heading of level 4 or above. Exercises
  (``**N. Title.**`` paragraphs under ``## Exercises``) become ``### N. Title.`` headings, which end
  the previous solution's section; other text after a solution is an error naming it (it would
  fold with the solution);
- code cells before the chapter's first prose (a chapter whose first cell is its title alone)
  follow that prose, so a copy opens with the title and the story.

Prose for one medium: a ``{only} html`` block (Sphinx's ``only`` directive; the book is an HTML
build) is left out of a copy, and a ``{only} colab`` block (a tag the book's build never sets) is
in the copy alone, as plain Markdown: say "the box below runs in your browser" in the first and
"the cell below runs it in Python" in the second.

Page-only content becomes what a notebook can do: the in-page generator's
``<div class="b2b-generator" data-seed=... data-seed-b=...>`` becomes a form cell that runs the
same generator in Python (:func:`b2b.sampling.web.page_sample`, seeds, walk and threshold as
``# @param`` fields) and plays its window; after a code cell that makes a listening quiz
(``name = listening.listening_quiz(...)``) comes a form cell where the reader types the picks and
``name.score(...)`` scores them. Cells a copy adds carry ``b2b_colab`` metadata.

Every other code cell stays exactly as in the chapter; the first code cell (the Colab install)
is the one :func:`install_cell` writes, for the URL and branch in ``_config.yml``. An unknown
role or directive is an error naming the chapter, so nothing MyST reaches a copy unconverted.

Usage::

    python scripts/colab_notebooks.py                  # (re)write colab/book/*.ipynb, README's links
    python scripts/colab_notebooks.py --build DIR      # the same, Markdown outputs from the build in DIR
    python scripts/colab_notebooks.py --check          # exit 1 if a copy (outputs aside) or the links are stale
    python scripts/colab_notebooks.py --install-cells  # also rewrite the chapters' install cells

The launch buttons open the copies (``_config.yml``: ``repository.path_to_book: colab``), and so
do the README's Colab links, written here between its ``colab-links`` markers. The repository
URL has one home, ``_config.yml``'s ``repository.url`` (with ``repository.branch``, default
``main``): the copies' and chapters' install cells and the README's links are written from it.
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

#: The Colab install cell, the first code cell of every chapter and of every copy. pip runs as a
#: subprocess (IPython 7's ``%pip`` does not fail the cell when pip fails) from ``$B2B_PIP_URL`` or
#: the configured repository and branch; a b2b installed earlier (a reused runtime) is replaced even
#: at the same version (pip keeps an installed version otherwise), imported b2b modules are
#: dropped so the next import loads the new one, and a b2b found elsewhere on ``sys.path`` that
#: shadows it stops the cell with what to do.
INSTALL_CELL = '''\
# In Colab only: install b2b (Colab keeps its own torch, numpy and IPython).
import os, sys
if "google.colab" in sys.modules:
    import importlib, importlib.metadata, subprocess
    B2B_PIP_URL = os.environ.get("B2B_PIP_URL", "git+{url}@{branch}")

    def pip(*args):
        return subprocess.run([sys.executable, "-m", "pip", "install", "-q", *args], capture_output=True, text=True)

    def failed(why):
        return RuntimeError(
            f"Installing b2b from {{B2B_PIP_URL}} failed ({{why}}). "
            "Check the repository URL, run this cell again, or install by hand: "
            f"pip install 'b2b[notebook] @ {{B2B_PIP_URL}}'")

    print(f"Installing b2b from {{B2B_PIP_URL}} (a minute or two)...")
    # Audio renderer; where it cannot be installed (no wheel, failed compile), b2b plays notes with numpy.
    if pip("--no-deps", "tinysoundfont").returncode:
        print("tinysoundfont could not be installed: b2b plays notes with its own numpy synthesizer.")
    try:
        earlier = importlib.metadata.version("b2b")  # a runtime used before: replace that b2b
    except importlib.metadata.PackageNotFoundError:
        earlier = None
    done = pip(f"b2b[notebook] @ {{B2B_PIP_URL}}")
    if earlier and not done.returncode:  # pip keeps an installed version: replace it
        done = pip("--force-reinstall", "--no-deps", f"b2b @ {{B2B_PIP_URL}}")
    if done.returncode:
        raise failed("pip: " + (done.stderr.strip().splitlines() or [f"exit {{done.returncode}}"])[-1])
    for name in [m for m in sys.modules if m == "b2b" or m.startswith("b2b.")]:
        del sys.modules[name]  # the next import loads the b2b just installed
    importlib.invalidate_caches()
    try:
        import b2b
    except ImportError as error:
        raise failed(error) from None
    installed = importlib.metadata.distribution("b2b").locate_file("b2b/__init__.py")
    if os.path.realpath(b2b.__file__) != os.path.realpath(installed):
        raise RuntimeError(
            f"Another b2b, {{b2b.__file__}}, comes first on sys.path and hides the one just installed "
            f"({{installed}}): remove it (or its folder from sys.path), restart the session "
            "(Runtime > Restart session) and run this cell again.")
    if earlier:
        print(f"Replaced b2b {{earlier}} with the one from {{B2B_PIP_URL}}; run the cells below from here.")'''

API_ROLES = {"func", "meth", "class", "mod", "attr", "data", "obj", "exc", "py:func", "py:class",
             "py:mod", "py:meth", "py:attr", "py:data", "py:obj", "py:exc"}
ROLE = re.compile(r"\{([a-z:]+)\}`([^`]*)`")
FENCE = re.compile(r"^(\s*)(`{3,}|:{3,})\{([\w:-]+)\}\s*(.*)$")


@dataclass
class Book:
    """What the rewriting needs to know about the whole book."""

    repo_url: str  # https://github.com/<owner>/<name>
    pages_url: str  # https://<owner>.github.io/<name>/
    figures: dict[str, str]  # figure label -> the book's figure number ("8.3", or "3" outside the chapters)
    titles: dict[str, str]  # docname ("book/02_gans") -> title
    bib: dict = field(default_factory=dict)  # key -> pybtex Entry
    branch: str = "main"  # repository.branch of _config.yml


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


def install_cell(repo_url: str, branch: str = "main") -> str:
    """Source of the Colab install cell for a repository URL (``https://github.com/o/n``) and branch."""
    if not re.fullmatch(r"[\w./-]+", branch) or ".." in branch:
        raise ValueError(f"repository.branch: expected a git branch name, got {branch!r}")
    return INSTALL_CELL.format(url=repo_url, branch=branch)


def repository_branch(root: Path = ROOT) -> str:
    """The configured branch, ``repository.branch`` of ``_config.yml`` (default ``main``): the branch the
    launch buttons open, the README links to and the install cells install from."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    return str(config.get("repository", {}).get("branch", "main"))


def toc_entries(root: Path = ROOT) -> list[tuple[str, bool]]:
    """Every document of ``_toc.yml`` in reading order (root first), as ``(docname without suffix,
    numbered)``: numbered is true for a chapter (a top-level entry) of a part with ``numbered:``."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    entries = [(toc["root"], False)]

    def walk(items: list[dict], numbered: bool) -> None:
        for item in items:
            if "file" in item:
                entries.append((item["file"], numbered))
            walk(item.get("sections", []), False)
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        walk(part.get("chapters", []), bool(part.get("numbered")))
    return entries


def toc_docnames(root: Path = ROOT) -> list[str]:
    """Every document of ``_toc.yml`` in reading order (root first), as docnames without suffix."""
    return [doc for doc, _ in toc_entries(root)]


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


def figure_numbers(root: Path = ROOT) -> dict[str, str]:
    """The book's figure numbers, as Sphinx gives them: ``"<chapter>.<k>"`` in a numbered part of the
    table of contents (``numbered:``; chapters counted over the numbered parts in order), and one
    plain counter ``"<k>"`` over the documents outside them, in table-of-contents order."""
    numbers: dict[str, str] = {}
    chapter, plain = 0, 0
    for doc, numbered in toc_entries(root):
        chapter += numbered
        for suffix in (".ipynb", ".md"):
            if (root / (doc + suffix)).is_file():
                for k, label in enumerate(_doc_figures(root / (doc + suffix)), 1):
                    if numbered:
                        numbers[label] = f"{chapter}.{k}"
                    else:
                        plain += 1
                        numbers[label] = str(plain)
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
    return Book(url, pages_url(url), figure_numbers(root), titles, bib, repository_branch(root))


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
            converted = _directive(book, doc, name, args, "\n".join(body), cited)
            if converted:
                out += [indent + q for q in converted.split("\n")]
            elif out and not out[-1].strip() and i < len(lines) and not lines[i].strip():
                i += 1  # a block left out of the copy ({only} html): one blank line between its neighbours, not two
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


def only_in_copy(doc: str, expression: str) -> bool:
    """Whether an ``{only}`` block (Sphinx's tag expression: names, ``and``, ``or``, ``not``, brackets)
    is in a copy, where the tag ``colab`` is set and no other (``html``, the book's builder, is not):
    ``{only} html`` is the book's alone, ``{only} colab`` the copy's alone."""
    words = re.findall(r"\w+|[()]", expression)
    if not words or "".join(words) != re.sub(r"\s", "", expression):
        raise ValueError(f"{doc}: {{only}} {expression!r} is not a tag expression")
    python = " ".join(w if w in ("and", "or", "not", "(", ")") else str(w == "colab") for w in words)
    try:
        return bool(eval(python, {"__builtins__": {}}))  # only True, False, and, or, not and brackets
    except SyntaxError:
        raise ValueError(f"{doc}: {{only}} {expression!r} is not a tag expression") from None


def _directive(book: Book, doc: str, name: str, args: str, body: str, cited: list[str]) -> str:
    if name in {"math"}:
        return "$$\n" + body.strip() + "\n$$"
    if name == "only":  # Sphinx's {only}: the copy is built with the tag "colab" alone
        return convert_markdown(book, doc, body.strip("\n"), cited) if only_in_copy(doc, args) else ""
    if name.startswith("glue") or name in {"bibliography", "code-cell", "eval-rst", "toctree"}:
        raise ValueError(f"{doc}: Colab cannot show the directive {{{name}}}; teach scripts/colab_notebooks.py about it")
    title = _inline(book, doc, args.strip(), cited) if args.strip() else name.replace("-", " ").capitalize()
    inner = convert_markdown(book, doc, body.strip("\n"), cited)
    quoted = "\n".join(("> " + q) if q.strip() else ">" for q in inner.split("\n"))
    return f"> **{title}**\n>\n{quoted}"


# --- notebooks ------------------------------------------------------------------------------

#: Tags with which Jupyter Book hides a code cell's source: in a copy such a cell is a Colab form
#: cell (``# @title`` first line, ``cellView: form``), its code folded under the title.
HIDDEN_TAGS = ("hide-input", "hide-cell", "remove-input", "remove-cell")
#: Default titles of the form cells, by tag (a cell's ``colab_title`` metadata, a figure it draws or a
#: comment on its first line gives a better one).
FORM_TITLES = {"remove-input": "Measured text, computed by this folded code",
               "remove-cell": "Folded code (the book does not show it)",
               "hide-cell": "Folded code that computes the answer",
               "hide-input": "Folded code of what is shown here"}
#: Heading levels of the copies' exercises (``**N. Title.**`` paragraphs under ``## Exercises``) and
#: of the solutions folded under them.
EXERCISE_LEVEL, SOLUTION_LEVEL = 3, 4
EXERCISE = re.compile(r"^\*\*(\d+)\.\s+(.+?)\*\*\s*(.*)$")
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
#: The in-page generator's markup (``_static/b2b-generator.js`` brings it to life) and the model it runs.
GENERATOR_DIV = re.compile(r'^\s*<div class="b2b-generator"([^>]*)>\s*</div>\s*$')
PAGE_MODEL = "pretrained/generator.pt"
#: A code cell that makes a listening quiz (``_static/b2b-listening.js`` scores it in the page).
QUIZ = re.compile(r"^(\w+)\s*=\s*listening\.listening_quiz\(", re.M)

#: What a copy has instead of the in-page generator: the same generator, run by b2b in Python.
GENERATOR_CELL = """\
# @title The page's generator, in Python: choose the seeds, the walk and the threshold, then run this cell
PAGE_GENERATOR_SEED = {seed}  # @param {{type:"integer"}}
PAGE_GENERATOR_SEED_B = {seed_b}  # @param {{type:"integer"}}
PAGE_GENERATOR_WALK = 0.0  # @param {{type:"slider", min:0, max:1, step:0.05}}
PAGE_GENERATOR_THRESHOLD = 0.0  # @param {{type:"number"}}
# The book's web page runs this generator in the browser; a notebook runs it with b2b: the same noise for a
# seed (b2b.sampling.web.portable_noise), the same walk, the same window. Threshold 0: the calibrated one.
import matplotlib.pyplot as plt
from IPython.display import display
from b2b.music import audio as _audio, data as _data, plot as _plot
from b2b.sampling import web as _web

_window, _threshold = _web.page_sample(_data.asset("{model}"), PAGE_GENERATOR_SEED, PAGE_GENERATOR_SEED_B,
                                       PAGE_GENERATOR_WALK, PAGE_GENERATOR_THRESHOLD or None)
_plot.pianoroll(_window, title=f"seed {{PAGE_GENERATOR_SEED}} to {{PAGE_GENERATOR_SEED_B}}, walk "
                f"{{PAGE_GENERATOR_WALK:.2f}}, threshold {{_threshold:.4f}}: {{int(_window.sum()):,}} cells on")
plt.show()
if not _window.any():
    print("No note at this threshold: lower it.")
elif _window.sum() > 5_000:
    print("A wall of sound, too many notes to play: raise the threshold.")
else:
    display(_audio.to_audio(_window, sample_rate=16000))"""

#: What a copy adds after a listening quiz: the page scores the quiz in the browser, a notebook here.
QUIZ_CELL = """\
# @title Your picks: one letter per pair, A or B (the clip you think is Bach), in order; then run this cell
QUIZ_PICKS = ""  # @param {{type:"string"}}
# The book's web page keeps the score in the browser; in a notebook the quiz scores the picks typed above.
print({quiz}.score(QUIZ_PICKS))"""


def _heading_level(text: str) -> int:
    """Level of the heading a Markdown text starts with (0: it starts with something else)."""
    first = text.lstrip("\n").split("\n", 1)[0]
    m = HEADING.match(first)
    return len(m.group(1)) if m else 0


def markdown_pieces(source: str, state: dict) -> list[tuple]:
    """A chapter's Markdown cell cut where a copy needs separate cells, in order:

    - ``("text", markdown)``: MyST as in the chapter; under ``## Exercises`` a paragraph opening
      with ``**N. Title.**`` starts a new piece whose first line is the heading ``### N. Title.``;
    - ``("solution", title, body)``: an admonition the book keeps collapsed (``:class: dropdown``,
      or a ``{dropdown}`` directive);
    - ``("generator", attributes)``: the in-page generator's ``<div class="b2b-generator">``.

    ``state["exercises"]`` says whether the text is in an Exercises section (carried from cell to cell).
    """
    lines, pieces, text, i = source.split("\n"), [], [], 0

    def flush() -> None:
        if "\n".join(text).strip():
            pieces.append(("text", "\n".join(text).strip("\n")))
        text.clear()

    while i < len(lines):
        line = lines[i]
        if m := HEADING.match(line):
            if len(m.group(1)) <= 2:
                state["exercises"] = m.group(2).strip().lower().startswith("exercises")
        if (m := FENCE.match(line)) and not m.group(1):
            fence, name, args = m.group(2), m.group(3), m.group(4)
            j, body = i + 1, []
            while j < len(lines) and not (lines[j].strip().startswith(fence[0] * len(fence))
                                          and lines[j].strip().strip(fence[0]) == ""):
                body.append(lines[j])
                j += 1
            options = [b for b in body if re.match(r"^:[\w-]+:", b)]
            dropdown = name == "dropdown" or any(re.match(r"^:class:.*\bdropdown\b", o) for o in options)
            if dropdown:
                flush()
                content = body[len(options):] if body[:len(options)] == options else body
                pieces.append(("solution", args.strip() or "Solution", "\n".join(content).strip("\n")))
            else:
                text += lines[i:j + 1]
            i = j + 1
            continue
        if m := re.match(r"^(\s*)(`{3,}|~{3,})", line):  # a plain code fence: nothing inside is cut
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(m.group(2)):
                j += 1
            text += lines[i:j + 1]
            i = j + 1
            continue
        if m := GENERATOR_DIV.match(line):
            flush()
            pieces.append(("generator", dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(1)))))
            i += 1
            continue
        if state.get("exercises") and (m := EXERCISE.match(line)) and (not text or not text[-1].strip()):
            flush()
            rest = m.group(3)
            text += [f"{'#' * EXERCISE_LEVEL} {m.group(1)}. {m.group(2).strip().rstrip('.')}", ""] + ([rest] if rest else [])
            i += 1
            continue
        text.append(line)
        i += 1
    flush()
    return pieces


def form_title(book: Book, cell: nbformat.NotebookNode) -> str:
    """The ``# @title`` of a hidden cell's form in a copy: the cell's ``colab_title`` metadata, else
    "Code of Figure N" for a figure, else the comment on its first line, else :data:`FORM_TITLES`."""
    if cell.metadata.get("colab_title"):
        return " ".join(str(cell.metadata["colab_title"]).split())
    figure = cell.metadata.get("mystnb", {}).get("figure", {}).get("name")
    if figure in book.figures:
        return f"Code of Figure {book.figures[figure]}"
    first = cell.source.split("\n", 1)[0]
    if m := re.match(r"^#(?![!@])\s*(\S.*)$", first):
        words = m.group(1).strip()
        return words if len(words) <= 90 else words[:88].rsplit(" ", 1)[0] + " …"
    tags = cell.metadata.get("tags", [])
    return next(FORM_TITLES[t] for t in HIDDEN_TAGS if t in tags)


def is_hidden(cell: nbformat.NotebookNode) -> bool:
    """Whether the book hides a code cell's source (one of :data:`HIDDEN_TAGS`)."""
    return cell.cell_type == "code" and bool(set(HIDDEN_TAGS) & set(cell.metadata.get("tags", [])))


def markdown_outputs(book: Book, doc: str, outputs: list) -> list | None:
    """The Markdown outputs of a code cell as a copy stores them (the measured sentences and tables of
    the book): each ``display_data``/``execute_result`` with ``text/markdown``, converted to plain
    Markdown; other outputs (a figure, sound, printed text, a widget) are left out, since running the
    cell makes them. None when the cell has no Markdown output or one holds MyST that Colab cannot show."""
    kept = []
    for out in outputs or []:
        data = out.get("data", {}) if out.get("output_type") in ("display_data", "execute_result") else {}
        if "text/markdown" not in data:
            continue
        md = data["text/markdown"]
        try:
            md = convert_markdown(book, doc, "".join(md) if isinstance(md, list) else md, [])
        except ValueError:
            return None
        kept.append(nbformat.v4.new_output("display_data", data={"text/markdown": md}))
    return kept or None


def _chapter_code(cells: list) -> list[tuple[str, str]]:
    """``(id, source)`` of a chapter's code cells, its install cell aside."""
    return [(c.get("id"), c.source) for c in cells if c.cell_type == "code"][1:]


def _copy_code(cells: list) -> list[tuple[str, str]]:
    """``(id, source)`` of the chapter's code cells as a copy holds them: the install cell, the cells the
    copy adds and the form titles aside."""
    return [(c.get("id"), re.sub(r"^# @title[^\n]*\n", "", c.source) if c.metadata.get("cellView") == "form" else c.source)
            for c in cells if c.cell_type == "code" and "b2b_colab" not in c.metadata][1:]


def executed_notebooks(build: Path) -> list[Path]:
    """The executed chapters of a Jupyter Book build: ``jupyter_execute/**/*.ipynb`` and the execution
    cache's notebooks (``.jupyter_cache/executed/*/base.ipynb``, where a cached build keeps outputs)."""
    return sorted(build.glob("jupyter_execute/**/*.ipynb")) + sorted(build.glob(".jupyter_cache/executed/*/base.ipynb"))


def stored_outputs(book: Book, chapter: Path, build: Path | None, previous: Path | None,
                   root: Path = ROOT) -> dict[str, tuple[str, list]]:
    """The Markdown outputs a copy keeps, ``{cell id: (the chapter cell's source, outputs)}``, for the
    hidden cells of ``chapter`` that have Markdown outputs (:func:`markdown_outputs`).

    From an executed notebook of the build (``build``, :func:`executed_notebooks`) whose code cells
    are exactly the chapter's (what ran is what the chapter holds now), else from the copy written
    before (``previous``) when its code is the chapter's: a copy keeps what a build computed until
    the chapter's code changes, so writing the copies again without a build changes nothing, and a
    chapter whose code changed after the build gets no outputs until the next build.
    """
    doc = chapter.relative_to(root).with_suffix("").as_posix()
    cells = nbformat.read(chapter, as_version=4).cells
    code = _chapter_code(cells)
    hidden = {c.get("id"): c.source for c in cells if is_hidden(c)}
    found: dict[str, tuple[str, list]] = {}
    if previous is not None and previous.is_file():
        before = nbformat.read(previous, as_version=4).cells
        if _copy_code(before) == code:
            for c in before:
                if c.get("id") in hidden and c.cell_type == "code" and c.get("outputs"):
                    found[c["id"]] = (hidden[c["id"]], c.outputs)
    for executed in executed_notebooks(build) if build is not None and build.is_dir() else []:
        ran = nbformat.read(executed, as_version=4).cells
        if _chapter_code(ran) != code:
            continue
        fresh = {}
        for c in ran:
            if c.get("id") in hidden and c.cell_type == "code":
                outputs = markdown_outputs(book, doc, c.outputs)
                if outputs:
                    fresh[c["id"]] = (c.source, outputs)
        if fresh:
            found = fresh
    return found


def _piece_id(base: str, k: int, kind: str = "part") -> str:
    return (base if k == 0 else f"{base}-{kind}-{k}")[:64]


def colab_copy(book: Book, path: Path, root: Path = ROOT,
               outputs: dict[str, tuple[str, list]] | None = None) -> nbformat.NotebookNode:
    """The Colab copy of one chapter (a new notebook; the chapter file is not touched).

    ``outputs``: Markdown outputs to store in hidden cells (:func:`stored_outputs`), used only where
    the chapter's cell has the same source."""
    nb = nbformat.read(path, as_version=4)
    doc = path.relative_to(root).with_suffix("").as_posix()
    outputs = outputs or {}
    cited: list[str] = []
    cells: list = []
    collapsed: list[str] = []
    state = {"exercises": False}
    folding = None  # the solution whose section is open (folded in Colab up to the next heading)
    deferred: list = []  # code before the chapter's first prose: shown after it
    seen_code, seen_prose = False, False

    def add_markdown(source: str, cell_id: str, metadata: dict | None = None) -> None:
        nonlocal folding
        level = _heading_level(source)
        if folding is not None and not 1 <= level <= SOLUTION_LEVEL:
            raise ValueError(f"{doc}: the text after the solution {folding!r} would be folded with it in Colab: "
                             f"start it with a heading or an exercise (**N. Title.**): {source[:60]!r}")
        if level and level <= SOLUTION_LEVEL:
            folding = None
        cells.append(nbformat.v4.new_markdown_cell(source, id=cell_id, metadata=metadata or {}))

    for index, original in enumerate(nb.cells):
        cell = copy.deepcopy(original)
        for key in ("execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        added: list = []
        if cell.cell_type == "markdown":
            for k, piece in enumerate(markdown_pieces(cell.source, state)):
                cid = _piece_id(cell.get("id") or f"cell-{index}", k)
                if piece[0] == "text":
                    add_markdown(convert_markdown(book, doc, piece[1], cited), cid, dict(cell.metadata) if k == 0 else {})
                elif piece[0] == "solution":
                    title = _inline(book, doc, piece[1], cited)
                    add_markdown(f"{'#' * SOLUTION_LEVEL} {title}", cid, {"id": cid})
                    collapsed.append(cid)
                    folding = title
                    if piece[2].strip():
                        cells.append(nbformat.v4.new_markdown_cell(convert_markdown(book, doc, piece[2], cited),
                                                                   id=_piece_id(cid, 1, "body")))
                else:
                    attrs = piece[1]
                    seed = int(attrs.get("data-seed", 7))
                    cells.append(nbformat.v4.new_code_cell(
                        GENERATOR_CELL.format(seed=seed, seed_b=int(attrs.get("data-seed-b", seed + 1)), model=PAGE_MODEL),
                        id=_piece_id(cid, 1, "page-generator"), metadata={"cellView": "form", "b2b_colab": "page-generator"}))
            if index == 0:  # a title alone is not prose: code before the first prose waits for it
                seen_prose = any(line.strip() and not HEADING.match(line) for line in cell.source.split("\n"))
            if index == 0 and not seen_code:
                page = f"{book.pages_url}{doc}.html"
                cells.append(nbformat.v4.new_markdown_cell(
                    f"*This is the Colab copy of a chapter of the book [From Bytes to Beats]({book.pages_url}), "
                    f"made from [`{doc}.ipynb`]({book.repo_url}/blob/{book.branch}/{doc}.ipynb) by "
                    f"`scripts/colab_notebooks.py`; the chapter as published is [here]({page}). "
                    "Run the first code cell before the others: it installs `b2b`. The folded cells keep the "
                    "measured sentences and tables the book's build computed; the other cells' outputs, "
                    "figures and sound appear when you run them (*Runtime > Run all*). Code the book keeps out "
                    "of sight is folded here (a form: *Show code* opens it), and so are the exercises' "
                    "solutions (the arrow beside *Solution* opens one).*", id="colab-copy-note"))
            elif index > 0 and not seen_prose:
                seen_prose = True
                cells.extend(deferred)
                deferred.clear()
            continue
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if not seen_code:
                cell.source, seen_code = install_cell(book.repo_url, book.branch), True
            elif is_hidden(cell):
                stored = outputs.get(cell.get("id"))
                if stored and stored[0] == cell.source:
                    cell.outputs = copy.deepcopy(stored[1])
                cell.source = f"# @title {form_title(book, cell)}\n{cell.source}"
                cell.metadata["cellView"] = "form"
            if m := QUIZ.search(original.source):
                added.append(nbformat.v4.new_code_cell(QUIZ_CELL.format(quiz=m.group(1)),
                                                       id=_piece_id(cell.get("id") or f"cell-{index}", 1, "quiz-score"),
                                                       metadata={"cellView": "form", "b2b_colab": "quiz-score"}))
        group = [cell]
        figure = cell.metadata.get("mystnb", {}).get("figure", {}) if cell.cell_type == "code" else {}
        if figure.get("name") in book.figures:
            caption = convert_markdown(book, doc, figure.get("caption", ""), cited)
            number = book.figures[figure["name"]]
            group.append(nbformat.v4.new_markdown_cell(f"**Figure {number}.** {caption}".strip(),
                                                       id=f"{figure['name']}-caption"[:64]))
        group += added
        if cell.cell_type == "code" and not seen_prose and cell.source != install_cell(book.repo_url, book.branch):
            deferred.extend(group)
        else:
            cells.extend(group)
    cells.extend(deferred)
    if cited:
        refs = sorted(cited, key=lambda k: (cite_label(book.bib[k]), k))
        add_markdown("## References\n\n" + "\n".join(f"- {reference_line(book.bib[k])}" for k in refs),
                     "colab-references")
    nb.cells = cells
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"},
                   "colab": {"provenance": [], "collapsed_sections": collapsed}}
    return nb


def without_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A notebook with every code cell's outputs removed (what ``--check`` compares)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    return nb


def is_current(book: Book, chapter: Path, root: Path = ROOT) -> bool:
    """Whether the copy of ``chapter`` on disk is what :func:`colab_copy` writes now, outputs aside:
    the stored Markdown outputs depend on whether a build was at hand, the rest never does."""
    dest = copy_path(chapter, root)
    return dest.is_file() and (render(without_outputs(nbformat.read(dest, as_version=4)))
                               == render(without_outputs(colab_copy(book, chapter, root))))


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
    source, changed = install_cell(repository_url(root), repository_branch(root)), []
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
                   help="first rewrite every chapter's install cell for _config.yml's repository.url and branch")
    p.add_argument("--build", type=Path, default=ROOT / "_build",
                   help="Jupyter Book build whose executed chapters (jupyter_execute/book/) give the hidden cells' "
                        "Markdown outputs (default: _build; without one, the copies keep the outputs they have)")
    args = p.parse_args(argv)
    try:
        if args.install_cells and not args.check:
            for path in write_install_cells():
                print(f"colab copies: rewrote the install cell of {path.relative_to(ROOT)}")
        book = load_book()
        stale, with_outputs = [], 0
        for chapter in chapters():
            dest = copy_path(chapter)
            if args.check:
                if not is_current(book, chapter):
                    stale.append(dest.relative_to(ROOT))
                continue
            outputs = stored_outputs(book, chapter, args.build, dest)
            nb = colab_copy(book, chapter, outputs=outputs)
            with_outputs += sum(1 for c in nb.cells if c.cell_type == "code" and c.outputs)
            text = render(nb)
            if dest.is_file() and dest.read_text(encoding="utf-8") == text:
                continue
            stale.append(dest.relative_to(ROOT))
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
          + ("" if args.check else f" ({len(stale)} changed; {with_outputs} hidden cells hold their Markdown "
                                   f"output from {'the build or ' if executed_notebooks(args.build) else ''}"
                                   "the copies before)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
