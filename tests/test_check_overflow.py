"""scripts/check_overflow.py: outputs that scroll sideways in a 1,300-px window, on small hand-made pages."""

from __future__ import annotations

import pytest

from conftest import load_script

check = load_script("check_overflow")
audio_check = load_script("check_html_audio")

PAGE = """<!DOCTYPE html><html><body style="margin:0"><main style="width:{main}px">
<p>Prose is not an output: <span style="display:inline-block;width:3000px">wide prose</span></p>
<div class="cell_output"><div class="output text_html"><table><tr><td>a narrow table</td></tr></table></div></div>
<div class="cell_output"><div class="output text_html" style="overflow-x:auto">
<table style="width:{table}px"><tr><td>nine columns of numbers</td></tr></table></div></div>
</main></body></html>"""


def _site(tmp_path, main: int, table: int):
    (tmp_path / "book").mkdir(parents=True)
    (tmp_path / "book" / "chapter.html").write_text(PAGE.format(main=main, table=table))
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "ignored.html").write_text(PAGE.format(main=100, table=5000))  # not a page
    return tmp_path


def test_pages_skip_static_files_the_search_page_and_redirects(tmp_path):
    site = _site(tmp_path, 800, 700)
    (site / "search.html").write_text("<html></html>")
    # Jupyter Book's index.html only sends the browser on: measuring it races the redirect
    (site / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/chapter.html" />\n')
    assert [p.relative_to(site).as_posix() for p in check.pages(site)] == ["book/chapter.html"]


def test_bad_arguments(tmp_path, capsys):
    assert check.main([str(tmp_path / "missing")]) == 2
    assert check.main([str(tmp_path), "--width", "50"]) == 2
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.skipif(audio_check.find_chromium() is None,
                    reason="no Chromium (apt-get install -y chromium; .ci/run installs it)")
def test_a_wide_output_fails_and_a_fitting_one_passes(tmp_path, capsys):
    wide = _site(tmp_path / "wide", 800, 2000)
    assert check.main([str(wide)]) == 1
    out = capsys.readouterr().out
    assert "book/chapter.html: output 3 scrolls sideways at 1300 px: content 2000 px wide in 800 px" in out
    assert "nine columns of numbers" in out and "narrow" not in out and "ignored" not in out
    assert "1 output(s) wider than their page" in out

    fits = _site(tmp_path / "fits", 800, 780)
    assert check.main([str(fits)]) == 0
    assert "no output scrolls sideways at 1300 px (1 pages)" in capsys.readouterr().out


def test_without_a_browser_the_build_can_skip(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(check, "find_chromium", lambda: None)
    site = _site(tmp_path, 800, 2000)
    assert check.main([str(site), "--skip-without-browser"]) == 0
    assert "skipped, no Chromium installed" in capsys.readouterr().out
