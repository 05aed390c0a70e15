"""Check the in-page generator of a built book page in headless Chromium.

Usage::

    python scripts/check_html_generator.py _build/html/book/09_lpd17_gpu.html      # the built book
    python scripts/check_html_generator.py --harness DIR                            # without a build

The second form writes a small site into ``DIR`` (the component ``_static/b2b-generator.*``,
the vendored ``_static/onnxruntime-web/``, the model exported from ``--generator`` with
:func:`b2b.sampling.web.export_onnx`, and a page holding chapter 9's own ``b2b-generator`` markup) and
checks that; ``tests/test_web.py`` runs it in CI.

Served over HTTP on 127.0.0.1, the page is driven over the Chrome DevTools Protocol
(``check_html_audio.py``'s plumbing). It checks that

1. the page has an in-page generator, and nothing is requested from outside the site;
2. a mouse click on "Generate this seed" (seed ``--seed``) loads onnxruntime-web and the model,
   draws a pianoroll with notes, and starts audio with a positive duration and level;
3. that pianoroll is the Python generator's at the same seed and threshold:
   ``generator(b2b.sampling.web.portable_noise(seed)) > threshold`` for the file the site's model was
   exported from (its SHA-256 must match ``--generator``), cell for cell, except cells whose
   probability is within ``1e-5`` of the threshold (float rounding; none are expected);
4. lowering the threshold adds notes, walking toward the second seed changes the window, and a
   window too dense to synthesize quickly is refused with a message;
5. no JavaScript exceptions and no failed requests;

and prints the time from click to sound and the bytes the generator adds to the page. Exits 1
if a check fails, 2 for bad arguments or no browser.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_html_audio import (browser_or_none, open_page, page_errors, reporter, request_problems,  # noqa: E402
                              run_check, wait_for)

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "book" / "09_lpd17_gpu.ipynb"
TOLERANCE = 1e-5

JS_STATE = r"""
(() => {
  const root = document.querySelector('div.b2b-generator');
  const st = root && root.b2b;
  if (!st) return null;
  const on = [];
  if (st.probs) for (let i = 0; i < st.probs.length; i++) if (st.probs[i] > st.threshold) on.push(i);
  return {seed: st.seed, mix: st.mix, threshold: st.threshold, on: on, n_notes: st.notes.length,
          audio: st.audio, timings: st.timings, error: st.error || null, playing: !!st.playing,
          status: root.querySelector('.b2b-gen-status').textContent};
})()
"""


def chapter_markup() -> str:
    """The ``<div class="b2b-generator" ...></div>`` element of chapter 9's markdown."""
    nb = json.loads(CHAPTER.read_text())
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and 'class="b2b-generator"' in text:
            start = text.index("<div")
            return text[start : text.index("</div>", start) + len("</div>")]
    raise SystemExit(f"check_html_generator: no b2b-generator element in {CHAPTER}")


def build_harness(folder: Path, generator: Path) -> Path:
    """A minimal site in ``folder`` with chapter 9's generator markup; its page."""
    from b2b.sampling.web import export_onnx

    static = folder / "_static"
    (static / "b2b").mkdir(parents=True, exist_ok=True)
    for name in ("b2b-generator.js", "b2b-generator.css"):
        shutil.copy(ROOT / "_static" / name, static / name)
    shutil.copytree(ROOT / "_static" / "onnxruntime-web", static / "onnxruntime-web", dirs_exist_ok=True)
    export_onnx(generator, static / "b2b" / "generator.onnx")
    page = folder / "book" / "page.html"
    page.parent.mkdir(exist_ok=True)
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>b2b generator</title><link rel='icon' href='data:,'>"
        "<link rel='stylesheet' href='../_static/b2b-generator.css'>"
        "<script src='../_static/b2b-generator.js'></script></head><body>"
        f"{chapter_markup()}</body></html>\n")
    return page


def python_probs(generator: Path, seed: int) -> Any:
    """``(17 * 64 * 72,)`` probabilities of the Python generator for ``seed`` (numpy)."""
    import torch

    from b2b.model.checkpoint import load_generator
    from b2b.sampling.web import portable_noise

    g, info = load_generator(generator)
    with torch.no_grad():
        return g(torch.from_numpy(portable_noise(seed, info["latent"]))).numpy().reshape(-1)


async def click(page: Any, selector: str) -> bool:
    """A real mouse click (press and release) in the middle of the first ``selector``."""
    box = await page.eval(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
        if (!e) return null; e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
        return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()""")
    if not box:
        return False
    for kind in ("mousePressed", "mouseReleased"):
        await page.send("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1)
    return True


async def set_input(page: Any, selector: str, value: float, event: str) -> None:
    await page.eval(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
        e.value = {json.dumps(str(value))}; e.dispatchEvent(new Event({json.dumps(event)})); }})()""")


async def check(url: str, port: int, generator: Path, seed: int, shots: Path | None, timeout: float) -> list[str]:
    import numpy as np

    failures: list[str] = []
    expect = reporter(failures)

    page = await open_page(port, url, timeout)
    if page is None:
        return ["the page did not finish loading"]
    n = await page.eval("(window.b2bGenerator && window.b2bGenerator.widgets.length) || 0")
    expect(n >= 1, f"the page has an in-page generator ({n})")
    if not n:
        return failures
    if shots is not None:
        await page.send("Page.captureScreenshot", format="png")
    await set_input(page, "div.b2b-generator .b2b-gen-seed", seed, "input")
    await click(page, "div.b2b-generator .b2b-gen-generate")
    st = await wait_for(page, f"(() => {{ const s = {JS_STATE}; return s && (s.error || (s.audio && s.playing)) ? s : null; }})()", timeout)
    if not st or st.get("error"):
        expect(False, f"a click produced a sample: {st.get('error') if st else 'nothing within the timeout'}")
        return failures
    print(f"  info  {st['status']}")
    t = st["timings"]
    print(f"  info  click to sound {t.get('click_to_sound_ms', float('nan')):.0f} ms (loading the runtime and "
          f"model {t.get('load_ms', float('nan')):.0f} ms, generator {t.get('model_ms', float('nan')):.0f} ms, "
          f"synthesis {t.get('synth_ms', float('nan')):.0f} ms)")
    expect(st["n_notes"] > 0 and len(st["on"]) > 0,
           f"the pianoroll has notes: {st['n_notes']} notes, {len(st['on'])} cells on")
    audio = st["audio"] or {}
    expect(audio.get("duration", 0) > 0 and audio.get("rms", 0) > 0,
           f"audio plays with a positive duration and level: {audio.get('duration', 0):.2f} s, rms {audio.get('rms', 0):.3f}")
    # the same seed in Python
    meta = json.loads((await page.eval("fetch(window.b2bGenerator.widgets[0].modelUrl.replace(/\\.onnx$/, '.json'))"
                                       ".then(r => r.text())")))
    sha = hashlib.sha256(generator.read_bytes()).hexdigest()
    expect(meta["source"]["sha256"] == sha,
           f"the page's model was exported from {generator.name} (SHA-256 {meta['source']['sha256'][:12]} vs {sha[:12]})")
    probs = python_probs(generator, seed)
    thr = float(st["threshold"])
    expect(abs(thr - meta["threshold"]) < 1e-6, f"the page starts at the calibrated threshold {meta['threshold']:.4f} ({thr:.4f})")
    page_on = np.zeros(probs.shape, bool)
    page_on[np.asarray(st["on"], dtype=np.int64)] = True
    py_on = probs > thr
    differ = np.flatnonzero(page_on != py_on)
    near = np.abs(probs[differ] - thr) < TOLERANCE
    expect(len(differ) == int(near.sum()),
           f"seed {seed}: the page's pianoroll is the Python generator's at threshold {thr:.4f} "
           f"({int(py_on.sum())} cells on in Python, {int(page_on.sum())} in the page, {len(differ)} differ, "
           f"{int(near.sum())} of them within {TOLERANCE:g} of the threshold)")
    # a second sample at the calibrated threshold, the runtime and model already loaded
    await page.eval("document.querySelector('div.b2b-generator').b2b.playing = false")
    await click(page, "div.b2b-generator .b2b-gen-new")
    again = await wait_for(page, f"(() => {{ const s = {JS_STATE}; return s && s.playing && s.seed !== {seed} ? s : null; }})()", timeout)
    if again:
        t = again["timings"]
        print(f"  info  'New sample' (seed {again['seed']}): click to sound {t.get('click_to_sound_ms', float('nan')):.0f} ms "
              f"(generator {t.get('model_ms', float('nan')):.0f} ms, synthesis {t.get('synth_ms', float('nan')):.0f} ms), "
              f"{again['n_notes']} notes")
    expect(bool(again) and bool(again["audio"]) and again["audio"]["duration"] > 0,
           "'New sample' draws a new seed, generates and plays it")
    # the threshold and the walk, on the window now shown
    base = await page.eval(JS_STATE)
    await set_input(page, "div.b2b-generator .b2b-gen-threshold", round(max(0.01, thr - 0.02), 3), "input")
    lower = await page.eval(JS_STATE)
    expect(len(lower["on"]) > len(base["on"]),
           f"lowering the threshold to {lower['threshold']:.2f} adds notes ({len(base['on'])} -> {len(lower['on'])} cells)")
    await set_input(page, "div.b2b-generator .b2b-gen-mix", 0.5, "change")
    walked = await wait_for(page, f"(() => {{ const s = {JS_STATE}; return s && s.mix === 0.5 ? s : null; }})()", timeout)
    expect(bool(walked) and walked["on"] != lower["on"],
           f"walking halfway toward the second seed changes the window "
           f"({len(lower['on'])} -> {len(walked['on']) if walked else '?'} cells on)")
    # a threshold so low that thousands of cells turn on: the page refuses to play rather than hang
    await set_input(page, "div.b2b-generator .b2b-gen-threshold", 0.05, "input")
    await click(page, "div.b2b-generator .b2b-gen-play")
    dense = await wait_for(page, f"(() => {{ const s = {JS_STATE}; return s && s.status.includes('too dense') ? s : null; }})()", 10)
    if not dense:
        print("  info  status after Play at 0.05:", await page.eval("document.querySelector('.b2b-gen-status').textContent"))
    expect(bool(dense) and not dense["audio"], f"at threshold 0.05 ({len(dense['on']) if dense else '?'} cells on) the page "
           "says the window is too dense to play instead of synthesizing it")
    if shots is not None:
        import base64

        r = await page.send("Page.captureScreenshot", format="png")
        (shots / "generator.png").write_bytes(base64.b64decode(r["data"]))
    # requests
    errors = page_errors(page)
    for e in errors:
        print("  JavaScript exception:", e[:300])
    expect(not errors, "no JavaScript exceptions")
    urls, outside, failed, bad = request_problems(page, url)
    expect(not outside, f"nothing is requested from outside the site ({outside[:3]})")
    expect(not failed and not bad, f"every request succeeds (failed {failed[:3]}, HTTP errors {bad[:3]})")
    sizes = {urls.get(e["params"]["requestId"], "?"): e["params"]["encodedDataLength"] for e in page.events
             if e["method"] == "Network.loadingFinished"}
    own = {u: b for u, b in sizes.items() if any(k in u for k in ("b2b-generator.", "onnxruntime-web/", "_static/b2b/"))}
    for u, b in sorted(own.items()):
        print(f"  info  {b / 1e6:7.3f} MB  {u.split('/_static/')[-1]}")
    print(f"  info  the generator adds {sum(own.values()) / 1e6:.2f} MB to the page, "
          f"{sum(b for u, b in own.items() if 'b2b-generator.' in u) / 1e3:.0f} kB of it before the first click")
    page.reader.cancel()
    page.ws.close()
    return failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("html", type=Path, nargs="?", help="the built page, e.g. _build/html/book/09_lpd17_gpu.html")
    ap.add_argument("--harness", type=Path, default=None, help="build a minimal site in this folder and check it")
    ap.add_argument("--generator", type=Path, default=ROOT / "data" / "pretrained" / "generator.pt",
                    help="the generator file the page's model comes from (default: data/pretrained/generator.pt)")
    ap.add_argument("--seed", type=int, default=7, help="seed to generate (default: 7)")
    ap.add_argument("--screenshots", type=Path, default=None, help="folder for a PNG screenshot")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the page and the model")
    ap.add_argument("--chromium", default=None, help="browser executable (default: chromium on PATH)")
    args = ap.parse_args(argv)
    if (args.html is None) == (args.harness is None):
        print("check_html_generator: give a built page or --harness DIR", file=sys.stderr)
        return 2
    if not args.generator.is_file():
        print(f"check_html_generator: --generator {args.generator} is not a file", file=sys.stderr)
        return 2
    browser = browser_or_none("check_html_generator", args.chromium)
    if not browser:
        return 2
    html = build_harness(args.harness, args.generator) if args.harness else args.html.resolve()
    if not html.is_file():
        print(f"check_html_generator: {html} is not a file", file=sys.stderr)
        return 2
    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    rc = run_check("check_html_generator", html, browser, args.timeout,
                   lambda url, port: check(url, port, args.generator, args.seed, args.screenshots, args.timeout))
    print(f"({time.monotonic() - t0:.0f} s)")
    return rc

if __name__ == "__main__":
    sys.exit(main())
