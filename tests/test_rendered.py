"""scripts/check_rendered.py: the built-book check for source syntax that did not render."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import check_rendered  # noqa: E402

# What MyST-NB writes for a code cell's Markdown output parsed as CommonMark, and what it writes
# when the output is parsed as MyST: the same source, one defect per page.
CLEAN = """<html><body><div class="cell_output">
<table class="table"><thead><tr><th>setting</th><th>seed</th></tr></thead>
<tbody><tr><td>threshold</td><td>0.9</td></tr></tbody></table>
<p>Costs $5 or $6 a month; a ratio of 1.09 | 1.11 is not a table.</p>
<p>Inline <span class="math notranslate nohighlight">\\(\\hat x\\)</span> and display maths:</p>
<div class="math notranslate nohighlight">\\[L_D = \\mathbb{E}\\,D(G(z))\\]</div>
<p>See <a class="reference internal" href="07_evaluation.html"><span class="doc">Evaluating</span></a>.</p>
<div class="highlight-python notranslate"><div class="highlight"><pre>rows = "| a | b |\\n|---|---|"  # {doc}`x` $y$ \\hat
</pre></div></div>
<p>The role <code class="docutils literal">{doc}`05_architecture`</code> is written like this.</p>
<script type="application/vnd.jupyter.widget-state+json">{"a": "| x | y | z |", "b": "$1$"}</script>
</div></body></html>"""

DEFECTS = {
    "table": '<div class="cell_output"><p>| setting | <code>seed</code> | improved |\n|—|—|—|\n'
             '| threshold | 0.9 | 0.5 |</p></div>',
    "maths": '<ul><li><p>update the critic on\n$$L_D = E D(G(z)),$$</p></li></ul>',
    "maths ": '<p>where each \\hat x lies between a real and a generated window</p>',
    "role": '<p>which {doc}<code class="docutils literal"><span class="pre">07_evaluation</span></code> found</p>',
    "role ": '<p>as in {cite:p}`gulrajani2017wgangp`.</p>',
    "directive": '<p>```{admonition} Solution 1\n:class: dropdown</p>',
    "directive ": '<div class="highlight-{admonition} notranslate"><div class="highlight"><pre>x</pre></div></div>',
    "glue": '<p>The dataset holds {glue:text}<code>n_windows</code> windows.</p>',
    "glue ": '<p>The dataset holds {{ n_windows }} windows.</p>',
}


def test_a_clean_page_passes():
    assert check_rendered.page_defects(CLEAN, "clean.html") == []


@pytest.mark.parametrize("kind", list(DEFECTS))
def test_each_defect_is_found(kind):
    defects = check_rendered.page_defects(f"<html><body>{DEFECTS[kind]}</body></html>", "bad.html")
    assert {d.kind for d in defects} == {kind.strip()}, defects
    assert all(d.page == "bad.html" for d in defects)


def test_every_row_of_a_raw_table_is_reported_with_its_line():
    html = "<html>\n<body>\n" + DEFECTS["table"] + "\n</body></html>"
    defects = check_rendered.page_defects(html, "t.html")
    assert [d.text for d in defects] == ["| setting | seed | improved |", "|—|—|—|", "| threshold | 0.9 | 0.5 |"]
    assert {d.line for d in defects} == {3}


def test_the_command_checks_every_page_of_a_build(tmp_path, capsys):
    (tmp_path / "book").mkdir()
    (tmp_path / "_static").mkdir()
    (tmp_path / "index.html").write_text(CLEAN)
    (tmp_path / "book" / "ch.html").write_text(CLEAN)
    (tmp_path / "_static" / "vendored.html").write_text(DEFECTS["table"])   # not a page of the book
    assert check_rendered.main([str(tmp_path)]) == 0
    (tmp_path / "book" / "ch.html").write_text(CLEAN.replace("</div></body>", DEFECTS["role "] + "</div></body>"))
    assert check_rendered.main([str(tmp_path)]) == 1
    assert "book/ch.html" in capsys.readouterr().err
    assert check_rendered.main([str(tmp_path / "missing")]) == 2


def test_the_book_command_runs_the_check():
    assert "python scripts/check_rendered.py _build/html" in (ROOT / "scripts" / "book.sh").read_text()
