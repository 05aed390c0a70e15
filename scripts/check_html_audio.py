"""Check the audio widgets of a built book page in headless Chromium.

Usage::

    python scripts/check_html_audio.py _build/html/book/09_lpd17_gpu.html [--screenshots DIR]

Serves the built site over HTTP on 127.0.0.1, opens the page in headless Chromium and talks to
it over the Chrome DevTools Protocol (with tornado's websocket client, which Jupyter already
installs). It checks that

1. the page carries saved ipywidgets state and loads the widget JavaScript (no failed requests),
2. the widgets render: there are ``<audio>`` elements, none autoplays or loops, and every one
   of them loads (its ``duration`` is a positive number of seconds),
3. moving the ``threshold`` and ``sample`` sliders (arrow keys on the slider handle) and
   clicking a solo/mute button changes which ``<audio>`` (and pianoroll image) is visible,

prints what it found, writes screenshots before and after moving a slider when ``--screenshots``
is given, and exits with 1 if a check fails (2 for bad arguments or no browser).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio",
    "--autoplay-policy=no-user-gesture-required", "--window-size=1280,1000",
]

# classes the chapter puts on its linked controls (widget.add_class)
SLIDERS = {"threshold": "b2b-threshold-slider", "sample": "b2b-sample-slider"}
SOLO = "b2b-solo-buttons"

# JavaScript run in the page ------------------------------------------------------------------
JS_STATE = r"""
(async () => {
  const visible = el => !!(el.offsetParent !== null && el.getBoundingClientRect().height > 0);
  // a Stack re-renders the selected child with fresh blob: URLs, so a clip is identified by a
  // digest of its bytes, not by its element or URL
  const digest = async el => {
    const src = el.currentSrc || el.src || '';
    if (!src) return 'none';
    const buf = await (await fetch(src)).arrayBuffer();
    const h = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
    return Array.from(h.slice(0, 4)).map(b => b.toString(16).padStart(2, '0')).join('');
  };
  const audios = Array.from(document.querySelectorAll('audio'));
  const imgs = Array.from(document.querySelectorAll('.widget-image, .jupyter-widgets img'));
  return {
    state_scripts: document.querySelectorAll('script[type="application/vnd.jupyter.widget-state+json"]').length,
    view_scripts: document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length,
    widgets: document.querySelectorAll('.jupyter-widgets').length,
    audio: audios.length,
    widget_audio: audios.filter(a => a.closest('.jupyter-widgets')).length,
    visible_audio: await Promise.all(audios.filter(visible).map(digest)),
    visible_img: await Promise.all(imgs.filter(visible).map(digest)),
    autoplay: audios.filter(a => a.autoplay).length,
    loop: audios.filter(a => a.loop).length,
    scripts: Array.from(document.scripts).map(s => s.src).filter(s => s),
  };
})()
"""

JS_DURATIONS = r"""
(async () => {
  const audios = Array.from(document.querySelectorAll('audio'));
  const one = a => new Promise(resolve => {
    const done = () => resolve({duration: a.duration, ready: a.readyState, error: a.error ? a.error.code : null,
                                src: (a.currentSrc || a.src || '').slice(0, 30), paused: a.paused});
    if (a.readyState >= 1) return done();
    a.addEventListener('loadedmetadata', done, {once: true});
    a.addEventListener('error', done, {once: true});
    setTimeout(done, 10000);
    a.preload = 'metadata';
    a.load();
  });
  return await Promise.all(audios.map(one));
})()
"""

JS_PLAY = r"""
(async () => {
  const visible = el => !!(el.offsetParent !== null && el.getBoundingClientRect().height > 0);
  const a = Array.from(document.querySelectorAll('audio')).find(visible);
  if (!a) return {played: false, why: 'no visible audio'};
  try { await a.play(); } catch (e) { return {played: false, why: String(e)}; }
  await new Promise(r => setTimeout(r, 700));
  const t = a.currentTime; a.pause(); a.currentTime = 0;
  return {played: t > 0, currentTime: t};
})()
"""


def js_focus_handle(cls: str) -> str:
    return f"""
(() => {{
  const w = document.querySelector('.{cls}');
  if (!w) return {{found: false}};
  w.scrollIntoView({{block: 'center'}});
  const h = w.querySelector('.noUi-handle') || w.querySelector('[tabindex]') || w.querySelector('input');
  if (!h) return {{found: true, handle: false, html: w.outerHTML.slice(0, 300)}};
  h.focus();
  return {{found: true, handle: true, focused: document.activeElement === h,
          label: (w.querySelector('.widget-readout') || {{}}).textContent || null}};
}})()
"""


def js_click_button(cls: str, index: int) -> str:
    return f"""
(() => {{
  const w = document.querySelector('.{cls}');
  if (!w) return {{found: false}};
  w.scrollIntoView({{block: 'center'}});
  const b = w.querySelectorAll('button');
  if (b.length <= {index}) return {{found: true, buttons: b.length}};
  b[{index}].click();
  return {{found: true, buttons: b.length, clicked: b[{index}].textContent}};
}})()
"""


def js_readout(cls: str) -> str:
    return f"""
(() => {{ const w = document.querySelector('.{cls}');
  return w ? ((w.querySelector('.widget-readout') || {{}}).textContent || null) : null; }})()
"""


# CDP plumbing --------------------------------------------------------------------------------
class Page:
    """A minimal Chrome DevTools Protocol session on one page target."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future] = {}
        self.events: list[dict] = []
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            msg = await self.ws.read_message()
            if msg is None:
                return
            data = json.loads(msg)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append(data)

    async def send(self, method: str, **params: Any) -> dict:
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.write_message(json.dumps({"id": self.next_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(fut, 60)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    async def eval(self, expr: str) -> Any:
        r = await self.send("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"page JavaScript failed: {r['exceptionDetails'].get('text')} "
                               f"{r['exceptionDetails'].get('exception', {}).get('description', '')}")
        return r["result"].get("value")

    async def key(self, key: str, code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.send("Input.dispatchKeyEvent", type=kind, key=key, code=key,
                            windowsVirtualKeyCode=code, nativeVirtualKeyCode=code)

    async def screenshot(self, path: Path) -> None:
        r = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(r["data"]))


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # keep stdout for the report
        pass


def site_root(html: Path) -> Path:
    """The built site's root: the nearest parent holding ``_static``."""
    for p in html.parents:
        if (p / "_static").is_dir():
            return p
    return html.parent


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@contextlib.contextmanager
def chromium(browser: str, timeout: float) -> Iterator[int]:
    """Start headless ``browser`` with a fresh profile; yield its DevTools port; stop it after.

    Raises RuntimeError when the browser does not start within ``timeout`` seconds.
    """
    # the browser may still write into its profile while it exits: do not fail on the clean-up
    with tempfile.TemporaryDirectory(prefix="b2b-chromium-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen([browser, *CHROMIUM_FLAGS, "--remote-debugging-port=0",
                                 f"--user-data-dir={profile}", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            t0 = time.monotonic()
            while not (port_file.is_file() and port_file.read_text().strip()):
                if proc.poll() is not None or time.monotonic() - t0 > timeout:
                    raise RuntimeError("the browser did not start")
                time.sleep(0.1)
            yield int(port_file.read_text().split()[0])
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


async def open_page(port: int, url: str, timeout: float) -> Page | None:
    """Connect to the browser on ``port``, load ``url`` with the Page, Runtime, Network and Log
    domains enabled; the Page, or None if it did not finish loading within ``timeout`` s."""
    from tornado.httpclient import AsyncHTTPClient
    from tornado.websocket import websocket_connect

    targets = json.loads((await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/json/list")).body)
    target = next(t for t in targets if t.get("type") == "page")
    ws = await websocket_connect(target["webSocketDebuggerUrl"], max_message_size=256 * 2**20)
    page = Page(ws)
    for domain in ("Page", "Runtime", "Network", "Log"):
        await page.send(f"{domain}.enable")
    await page.send("Emulation.setDeviceMetricsOverride", width=1280, height=1000, deviceScaleFactor=1, mobile=False)
    await page.send("Page.navigate", url=url)
    t0 = time.monotonic()
    while not any(e["method"] == "Page.loadEventFired" for e in page.events):
        if time.monotonic() - t0 > timeout:
            return None
        await asyncio.sleep(0.1)
    print(f"loaded {url} in {time.monotonic() - t0:.1f} s")
    return page


def request_problems(page, url: str) -> tuple[dict[str, str], list[str], list[str], list[str]]:
    """From a page's recorded network events: every request's URL by id, the URLs requested from
    outside the site at ``url`` (``data:`` and ``blob:`` are inside), the requests that failed and
    the responses with an HTTP error (a missing favicon aside)."""
    urls = {e["params"]["requestId"]: e["params"]["request"]["url"] for e in page.events
            if e["method"] == "Network.requestWillBeSent"}
    origin = url.split("/", 3)[:3]
    outside = sorted({u for u in urls.values() if u.split("/", 3)[:3] != origin and not u.startswith(("data:", "blob:"))})
    failed = [urls.get(e["params"]["requestId"], "?") for e in page.events if e["method"] == "Network.loadingFailed"]
    bad = [e["params"]["response"]["url"] for e in page.events if e["method"] == "Network.responseReceived"
           and e["params"]["response"]["status"] >= 400 and not e["params"]["response"]["url"].endswith("/favicon.ico")]
    return urls, outside, failed, bad


def page_errors(page: Page) -> list[str]:
    """JavaScript exceptions thrown in the page, except the theme's known duplicate inline script
    (Jupyter Book 1.x writes the sphinx-thebe/togglebutton scripts twice into every page)."""
    out = []
    for e in page.events:
        if e["method"] != "Runtime.exceptionThrown":
            continue
        text = e["params"]["exceptionDetails"].get("exception", {}).get("description") or json.dumps(e["params"])
        if "has already been declared" in text:
            print("  info  known duplicate inline script of the theme:", text[:120])
        else:
            out.append(text)
    return out


def browser_or_none(name: str, given: str | None) -> str | None:
    """``given``, or the Chromium on PATH; None (after saying so, as ``name``) when there is none."""
    browser = given or find_chromium()
    if not browser:
        print(f"{name}: no chromium found (apt-get install -y chromium)", file=sys.stderr)
    return browser


def run_check(name: str, html: Path, browser: str, timeout: float,
              check: Callable[[str, int], Awaitable[list[str]]]) -> int:
    """Serve the site around ``html`` on 127.0.0.1, start headless ``browser`` and run
    ``check(url, devtools_port)``; the exit code (0 all passed, 1 a check failed, 2 no browser)."""
    root = site_root(html)
    server, http_port = serve(root)
    url = f"http://127.0.0.1:{http_port}/{html.relative_to(root).as_posix()}"
    try:
        with chromium(browser, timeout) as port:
            failures = asyncio.run(check(url, port))
    except RuntimeError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 2
    finally:
        server.shutdown()
    return verdict(failures)


def reporter(failures: list[str]) -> Callable[[bool, str], None]:
    """``expect(ok, what)``: print one ok/FAIL line and collect the failures."""
    def expect(ok: bool, what: str) -> None:
        print(("  ok    " if ok else "  FAIL  ") + what)
        if not ok:
            failures.append(what)
    return expect


def verdict(failures: list[str]) -> int:
    """Print the last line and return the exit code: 0 when every check passed, else 1."""
    if failures:
        print(f"FAILED: {len(failures)} check(s)")
        return 1
    print("all checks passed")
    return 0


async def wait_for(page: Page, expr: str, timeout: float) -> Any:
    t0 = time.monotonic()
    while True:
        v = await page.eval(expr)
        if v or time.monotonic() - t0 > timeout:
            return v
        await asyncio.sleep(0.25)


# the check -----------------------------------------------------------------------------------
async def check(url: str, port: int, shots: Path | None, timeout: float) -> list[str]:
    failures: list[str] = []
    expect = reporter(failures)

    page = await open_page(port, url, timeout)
    if page is None:
        failures.append("the page did not finish loading")
        return failures
    rendered = await wait_for(page, "document.querySelectorAll('audio').length", timeout)
    await asyncio.sleep(1.0)  # let the remaining views attach
    st = await page.eval(JS_STATE)
    widget_js = [s for s in st["scripts"] if "embed" in s or "html-manager" in s]
    print("widget JavaScript:", ", ".join(widget_js) or "none")
    print(f"widget state scripts {st['state_scripts']}, widget views {st['view_scripts']}, "
          f"rendered widgets {st['widgets']}, <audio> elements {st['audio']}")

    failed = [e["params"] for e in page.events if e["method"] == "Network.loadingFailed"]
    bad = [e["params"]["response"] for e in page.events if e["method"] == "Network.responseReceived"
           and e["params"]["response"]["status"] >= 400]
    errors = page_errors(page)
    urls = {e["params"]["requestId"]: e["params"]["request"]["url"] for e in page.events
            if e["method"] == "Network.requestWillBeSent"}
    for f in failed:
        print("  info  request not completed:", f.get("errorText"), urls.get(f.get("requestId"), "?")[:100])
    failed_js = [urls.get(f.get("requestId"), "") for f in failed
                 if any(urls.get(f.get("requestId"), "").startswith(u.split("?")[0]) for u in widget_js)]
    for r in bad:
        print("  info  HTTP", r["status"], r["url"])
    for e in errors:
        print("  JavaScript exception:", e[:300])
    js_failed = [r["url"] for r in bad if r["url"] in widget_js] + failed_js
    expect(st["state_scripts"] >= 1, "the page carries saved widget state")
    expect(bool(widget_js) and not js_failed, "the widget JavaScript is referenced and loads")
    expect(not errors, "no JavaScript exceptions (other than the known duplicate theme script)")
    expect(bool(rendered) and st["widget_audio"] > 0,
           f"widgets rendered <audio> elements ({st['widget_audio']} of the {st['audio']} on the page)")
    expect(st["autoplay"] == 0 and st["loop"] == 0,
           f"no <audio> autoplays or loops ({st['autoplay']} autoplay, {st['loop']} loop)")
    expect(len(st["visible_audio"]) >= 1, f"visible <audio> elements: {st['visible_audio']}")

    durations = await page.eval(JS_DURATIONS)
    ds = [d["duration"] for d in durations]
    good = [d for d in ds if isinstance(d, (int, float)) and d > 0]
    if ds:
        print(f"durations (s): {len(good)}/{len(ds)} positive, min {min(good, default=0):.2f}, "
              f"max {max(good, default=0):.2f}; sources {sorted({d['src'][:5] for d in durations})}")
    for i, d in enumerate(durations):
        if d not in good and not (isinstance(d.get("duration"), (int, float)) and d["duration"] > 0):
            print(f"  audio {i}: {d}")
    expect(len(ds) > 0 and len(good) == len(ds), "every <audio> loads with duration > 0")
    expect(all(d["paused"] for d in durations), "nothing plays by itself")
    play = await page.eval(JS_PLAY)
    print(f"  info  playing the first visible clip: {play} (headless audio output is muted; informational)")

    # move the sliders and press a solo button: the visible clip must change
    for name, cls in SLIDERS.items():
        focus = await page.eval(js_focus_handle(cls))
        if not (focus and focus.get("handle")):
            expect(False, f"{name} slider (.{cls}) found with a handle: {focus}")
            continue
        await asyncio.sleep(0.3)
        before = await page.eval(JS_STATE)
        label0 = await page.eval(js_readout(cls))
        if shots is not None:
            await page.screenshot(shots / f"{name}_before.png")
        await page.key("ArrowRight", 39)
        await asyncio.sleep(0.8)
        after = await page.eval(JS_STATE)
        label1 = await page.eval(js_readout(cls))
        if shots is not None:
            await page.screenshot(shots / f"{name}_after.png")
        changed = before["visible_audio"] != after["visible_audio"]
        expect(changed and label0 != label1,
               f"moving the {name} slider ({label0!r} -> {label1!r}) changes the visible <audio>: "
               f"{before['visible_audio']} -> {after['visible_audio']}; images "
               f"{before['visible_img']} -> {after['visible_img']}")
        await page.key("ArrowLeft", 37)
        await asyncio.sleep(0.5)
        back = await page.eval(JS_STATE)
        expect(back["visible_audio"] == before["visible_audio"],
               f"moving the {name} slider back shows the first <audio> again: {back['visible_audio']}")
    before = await page.eval(JS_STATE)
    click = await page.eval(js_click_button(SOLO, 1))
    await asyncio.sleep(0.8)
    after = await page.eval(JS_STATE)
    if shots is not None:
        await page.screenshot(shots / "solo_after.png")
    expect(bool(click and click.get("clicked")) and before["visible_audio"] != after["visible_audio"],
           f"pressing {click.get('clicked') if click else None!r} (of {click.get('buttons') if click else 0} "
           f"solo/mute buttons) changes the visible <audio>: {before['visible_audio']} -> {after['visible_audio']}")
    page.reader.cancel()
    page.ws.close()
    return failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("html", type=Path, help="the built HTML page, e.g. _build/html/book/09_lpd17_gpu.html")
    ap.add_argument("--screenshots", type=Path, default=None, help="folder for PNG screenshots")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the page and widgets")
    ap.add_argument("--chromium", default=None, help="browser executable (default: chromium on PATH)")
    args = ap.parse_args(argv)
    html = args.html.resolve()
    if not html.is_file():
        print(f"check_html_audio: {html} is not a file", file=sys.stderr)
        return 2
    browser = browser_or_none("check_html_audio", args.chromium)
    if not browser:
        return 2
    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    return run_check("check_html_audio", html, browser, args.timeout,
                     lambda url, port: check(url, port, args.screenshots, args.timeout))

if __name__ == "__main__":
    sys.exit(main())
