"""Check the listening quiz ("Which one is Bach?") of a built book page in headless Chromium.

Usage::

    python scripts/check_html_quiz.py _build/html/book/07_measuring.html     # the built book
    python scripts/check_html_quiz.py --harness DIR                            # without a build

The second form writes a small site into ``DIR`` (``_static/b2b-listening.*`` and a page holding
a quiz made by :func:`b2b.evaluation.listening.listening_quiz` from small hand-made windows) and checks
that; ``tests/test_listening.py`` runs it in CI.

Served over HTTP on 127.0.0.1, the page is driven over the Chrome DevTools Protocol
(``check_html_audio.py``'s plumbing, ``check_html_generator.py``'s mouse click). It checks that

1. the page has one quiz, its scripts replaced the "here you can only listen" note with a pick
   per pair, and every clip loads, both clips of a pair lasting equally long (to 1 ms);
2. the page's answers are the ones Python decodes from the page's HTML
   (:func:`b2b.evaluation.listening.answer_key`), and with ``--harness`` the quiz's own answer key;
3. "Show my score" stays disabled until every pair has a pick (real mouse clicks, one pick
   changed on the way), then reveals each pair's answer and the score: k of n right, and the
   coin's chance of at least k of n equal to :func:`b2b.evaluation.listening.p_at_least`;
4. after a reload, all pairs right gives the "rare for a coin" verdict when that chance is at
   most 5% (and the other verdict when it is not);
5. no JavaScript exceptions, no failed requests, nothing requested from outside the site;

and exits 1 if a check fails, 2 for bad arguments or no browser.
"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_html_audio import (browser_or_none, open_page, page_errors, reporter, request_problems,  # noqa: E402
                              run_check, wait_for)
from check_html_generator import click  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

JS_STATE = r"""
(() => {
  const q = (window.b2bListening && window.b2bListening.quizzes[0]) || null;
  if (!q) return null;
  return {n: q.pairs.length, declared: Number(q.root.getAttribute('data-b2b-pairs')), answers: q.answers,
          picks: q.picks, done: q.done, disabled: q.button.disabled, progress: q.progress.textContent,
          result: q.result.textContent, nojs: q.root.querySelectorAll('.b2b-quiz-nojs').length,
          buttons: q.root.querySelectorAll('button.b2b-quiz-pick').length,
          reveals: q.pairs.map(li => li.querySelector('.b2b-quiz-reveal').textContent),
          marks: q.pairs.map(li => li.classList.contains('b2b-quiz-right') ? 'right' :
                                   li.classList.contains('b2b-quiz-wrong') ? 'wrong' : '')};
})()
"""

JS_DURATIONS = r"""
(async () => {
  const one = a => new Promise(resolve => {
    const done = () => resolve({duration: a.duration, paused: a.paused, autoplay: a.autoplay});
    if (a.readyState >= 1) return done();
    a.addEventListener('loadedmetadata', done, {once: true});
    a.addEventListener('error', done, {once: true});
    setTimeout(done, 10000);
    a.load();
  });
  const pairs = Array.from(document.querySelectorAll('div.b2b-quiz li.b2b-quiz-pair'));
  return await Promise.all(pairs.map(li => Promise.all(Array.from(li.querySelectorAll('audio')).map(one))));
})()
"""


def harness_windows(n: int) -> tuple[Any, Any]:
    """``n`` hand-made pairs ``(real, generated)``, bool and probabilities ``(n, 17, 64, 72)``:
    "real" is a rising line on the piano, "generated" a held cluster on the bass (0.8 > 0.5)."""
    import numpy as np

    real = np.zeros((n, 17, 64, 72), bool)
    generated = np.zeros((n, 17, 64, 72), np.float32)
    for i in range(n):
        for s in range(16):
            real[i, 1, 4 * s : 4 * s + 3, 30 + s + i] = True
        generated[i, 5, 8 : 40 + 2 * i, [12, 15 + i]] = 0.8
    return real, generated


def build_harness(folder: Path, pairs: int, seed: int) -> tuple[Path, tuple[bool, ...]]:
    """A minimal site in ``folder``: the quiz's static files and a page with a quiz of ``pairs``
    pairs; the page and the quiz's answer key."""
    from b2b.evaluation.listening import listening_quiz

    static = folder / "_static"
    static.mkdir(parents=True, exist_ok=True)
    for name in ("b2b-listening.js", "b2b-listening.css"):
        shutil.copy(ROOT / "_static" / name, static / name)
    quiz = listening_quiz(*harness_windows(pairs), seed=seed, backend="numpy")
    page = folder / "book" / "page.html"
    page.parent.mkdir(exist_ok=True)
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>b2b quiz</title><link rel='icon' href='data:,'>"
        "<link rel='stylesheet' href='../_static/b2b-listening.css'>"
        "<script src='../_static/b2b-listening.js'></script></head><body>"
        f"{quiz.html}</body></html>\n")
    return page, quiz.bach_first


def pick_selector(i: int, pick: int) -> str:
    return f"div.b2b-quiz li.b2b-quiz-pair:nth-child({i + 1}) button.b2b-quiz-pick:nth-of-type({pick + 1})"


def coin_percent(text: str) -> float | None:
    """The percentage the result sentence gives for the coin (0.05 for "less than 0.1%")."""
    m = re.search(r"with probability (less than )?([0-9.]+)%", text)
    return None if not m else (0.05 if m.group(1) else float(m.group(2)))


async def reload(page: Any, url: str, timeout: float) -> bool:
    """Load ``url`` again in ``page`` (a fresh quiz); False if it did not finish in time."""
    page.events.clear()
    await page.send("Page.navigate", url=url)
    return bool(await wait_for(page, "document.readyState === 'complete' && !!window.b2bListening", timeout))


async def check(url: str, port: int, html: Path, key: tuple[bool, ...] | None, shots: Path | None,
                timeout: float) -> list[str]:
    from b2b.evaluation.listening import answer_key, p_at_least

    failures: list[str] = []
    expect = reporter(failures)
    page = await open_page(port, url, timeout)
    if page is None:
        return ["the page did not finish loading"]
    st = await page.eval(JS_STATE)
    n_quiz = await page.eval("(window.b2bListening && window.b2bListening.quizzes.length) || 0")
    expect(n_quiz == 1 and bool(st), f"the page has one listening quiz ({n_quiz})")
    if not st:
        return failures
    n = st["n"]
    expect(n >= 2 and n == st["declared"] and st["buttons"] == 2 * n and st["nojs"] == 0,
           f"the script turned the quiz on: {n} pairs ({st['declared']} declared), {st['buttons']} pick buttons, "
           f"the 'only listen' note removed ({st['nojs']} left)")
    durations = await page.eval(JS_DURATIONS)
    flat = [d for pair in durations for d in pair]
    good = [d["duration"] for d in flat if isinstance(d["duration"], (int, float)) and d["duration"] > 0]
    expect(all(len(p) == 2 for p in durations) and len(good) == len(flat) == 2 * n,
           f"every pair has two clips and every clip loads ({len(good)} of {len(flat)} with a duration)")
    same = [abs(p[0]["duration"] - p[1]["duration"]) for p in durations if len(p) == 2 and
            all(isinstance(d["duration"], (int, float)) for d in p)]
    expect(len(same) == n and max(same) < 1e-3,
           f"both clips of a pair last equally long (largest difference {max(same, default=float('nan')):.3f} s)")
    expect(not any(d["autoplay"] or not d["paused"] for d in flat), "no clip plays by itself")

    # the answers: the page's against Python's decoding of the same HTML (and the quiz's own key)
    py = answer_key(html.read_text())
    page_bach_first = [a == 0 for a in st["answers"]]
    expect(page_bach_first == py, f"the page's answers are the ones Python decodes from its HTML ({len(py)} pairs)")
    if key is not None:
        expect(page_bach_first == list(key), f"the page's answers are the quiz's answer key ({list(key)})")
    print(f"  info  Bach comes first in {sum(page_bach_first)} of {n} pairs")

    # pick with real clicks: right on the pairs i % 3 != 2, wrong on the others; pair 0 changed once
    want = [(st["answers"][i] if i % 3 != 2 else 1 - st["answers"][i]) for i in range(n)]
    right = sum(i % 3 != 2 for i in range(n))
    await click(page, pick_selector(0, 1 - want[0]))
    for i in range(n - 1):
        await click(page, pick_selector(i, want[i]))
    mid = await page.eval(JS_STATE)
    expect(mid["disabled"] and mid["progress"] == f"{n - 1} of {n} pairs answered" and not mid["result"],
           f"with {n - 1} of {n} pairs picked the score stays hidden ({mid['progress']!r}, button disabled: {mid['disabled']})")
    await click(page, pick_selector(n - 1, want[n - 1]))
    full = await page.eval(JS_STATE)
    expect(full["picks"] == want and not full["disabled"],
           f"every click registered, the changed one too ({full['picks']} vs {want}), and the score button is enabled")
    await click(page, "div.b2b-quiz button.b2b-quiz-score")
    end = await wait_for(page, f"(() => {{ const s = {JS_STATE}; return s && s.done ? s : null; }})()", 10)
    if not end:
        expect(False, "'Show my score' shows a score")
        return failures
    print(f"  info  {end['result']}")
    p = p_at_least(right, n)
    shown = coin_percent(end["result"])
    expect(f"You picked Bach in {right} of {n} pairs." in end["result"],
           f"the score is {right} of {n}: {end['result'][:60]!r}")
    expect(shown is not None and (abs(shown - 100 * p) <= 0.0501 or (shown == 0.05 and 100 * p < 0.1)),
           f"the coin's chance of at least {right} of {n} is p_at_least's {100 * p:.3f}% (page: {shown}%)")
    expect(("rarely" in end["result"]) == (p <= 0.05), f"the verdict fits p = {p:.4f}")
    reveal_ok = all(r.endswith("Bach was " + "AB"[a]) for r, a in zip(end["reveals"], end["answers"]))
    marks_ok = end["marks"] == ["right" if i % 3 != 2 else "wrong" for i in range(n)]
    expect(reveal_ok and marks_ok, f"each pair reveals its answer and is marked right or wrong ({end['marks']})")
    if shots is not None:
        r = await page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        (shots / "quiz.png").write_bytes(base64.b64decode(r["data"]))
    errors = page_errors(page)

    # a fresh quiz: every pair right
    if await reload(page, url, timeout):
        st = await page.eval(JS_STATE)
        for i in range(n):
            await click(page, pick_selector(i, st["answers"][i]))
        await click(page, "div.b2b-quiz button.b2b-quiz-score")
        best = await wait_for(page, f"(() => {{ const s = {JS_STATE}; return s && s.done ? s : null; }})()", 10)
        p = p_at_least(n, n)
        ok = bool(best) and f"You picked Bach in {n} of {n} pairs." in best["result"] and ("rarely" in best["result"]) == (p <= 0.05)
        expect(ok, f"after a reload, all {n} right: the coin's chance {100 * p:.2f}% and its verdict "
                   f"({best['result'][-100:] if best else 'no result'!r})")
    else:
        expect(False, "the page reloads")
    errors += page_errors(page)
    for e in errors:
        print("  JavaScript exception:", e[:300])
    expect(not errors, "no JavaScript exceptions")
    _, outside, failed, bad = request_problems(page, url)
    expect(not outside, f"nothing is requested from outside the site ({outside[:3]})")
    expect(not failed and not bad, f"every request succeeds (failed {failed[:3]}, HTTP errors {bad[:3]})")
    page.reader.cancel()
    page.ws.close()
    return failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("html", type=Path, nargs="?", help="the built page, e.g. _build/html/book/07_measuring.html")
    ap.add_argument("--harness", type=Path, default=None, help="build a minimal site in this folder and check it")
    ap.add_argument("--pairs", type=int, default=5, help="pairs of the harness's quiz (default: 5)")
    ap.add_argument("--seed", type=int, default=3, help="seed of the harness's quiz (default: 3)")
    ap.add_argument("--screenshots", type=Path, default=None, help="folder for a PNG screenshot")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the page")
    ap.add_argument("--chromium", default=None, help="browser executable (default: chromium on PATH)")
    args = ap.parse_args(argv)
    if (args.html is None) == (args.harness is None):
        print("check_html_quiz: give a built page or --harness DIR", file=sys.stderr)
        return 2
    if not 2 <= args.pairs <= 50:
        print(f"check_html_quiz: --pairs: expected 2 to 50, got {args.pairs}", file=sys.stderr)
        return 2
    browser = browser_or_none("check_html_quiz", args.chromium)
    if not browser:
        return 2
    key = None
    if args.harness:
        html, key = build_harness(args.harness, args.pairs, args.seed)
    else:
        html = args.html.resolve()
    if not html.is_file():
        print(f"check_html_quiz: {html} is not a file", file=sys.stderr)
        return 2
    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    rc = run_check("check_html_quiz", html, browser, args.timeout,
                   lambda url, port: check(url, port, html, key, args.screenshots, args.timeout))
    print(f"({time.monotonic() - t0:.0f} s)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
