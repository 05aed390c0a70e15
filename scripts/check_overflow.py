"""Check that no output of a built book page scrolls sideways in a browser window 1,300 px wide.

Run after a build (``scripts/book.sh`` does)::

    python scripts/check_overflow.py [_build/html] [--width 1300]

Every page of the site is loaded in headless Chromium (served on 127.0.0.1, the window set to
``--width`` CSS pixels) and every output area of a code cell (``.cell_output`` and the ``.output``
blocks inside it) is measured: where its content is wider than the area (``scrollWidth >
clientWidth``), the reader sees only part of it and has to scroll, as with a table of too many
columns or a row of too many audio players. Each such output is printed with its page, its
position among the page's outputs and the start of its text, and the exit code is 1.

Exit codes: 0 nothing overflows, 1 an output overflows, 2 bad arguments or no browser (with
``--skip-without-browser``: 0 and a line saying that the check was skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_html_audio import browser_or_none, chromium, find_chromium, serve  # noqa: E402

#: Output areas of MyST-NB's HTML: a code cell's outputs and each output block inside them.
SELECTOR = ".cell_output, .cell_output .output"

JS_MEASURE = """
(() => Array.from(document.querySelectorAll(%r)).map((el, i) => ({
    i: i, scroll: el.scrollWidth, client: el.clientWidth,
    text: (el.innerText || el.textContent || '').replace(/\\s+/g, ' ').trim().slice(0, 70) ||
          ('<' + ((el.querySelector('audio, img, table, svg') || {}).tagName || 'no text').toLowerCase() + '>')
  })).filter(o => o.client > 0 && o.scroll > o.client + 1))()
""" % SELECTOR

SKIP_DIRS = {"_static", "_sources", "_images", "_downloads"}


#: A page that only sends the browser elsewhere (the site's ``index.html``): measuring it would race its redirect.
REDIRECT = re.compile(rb"<meta\s+http-equiv=[\"']?refresh", re.I)


def pages(site: Path) -> list[Path]:
    """The site's HTML pages (not its static files, sources, the search and index pages, or redirects)."""
    return sorted(p for p in site.rglob("*.html")
                  if not SKIP_DIRS & set(p.relative_to(site).parts) and p.name not in ("search.html", "genindex.html")
                  and not REDIRECT.search(p.read_bytes()[:1024]))


async def _measure(port: int, base: str, rel: list[str], width: int, timeout: float) -> dict[str, list[dict]]:
    from tornado.httpclient import AsyncHTTPClient
    from tornado.websocket import websocket_connect

    from check_html_audio import Page

    import json

    targets = json.loads((await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/json/list")).body)
    target = next(t for t in targets if t.get("type") == "page")
    ws = await websocket_connect(target["webSocketDebuggerUrl"], max_message_size=256 * 2**20)
    page = Page(ws)
    await page.send("Page.enable")
    await page.send("Runtime.enable")
    await page.send("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
    found: dict[str, list[dict]] = {}
    for r in rel:
        page.events.clear()
        await page.send("Page.navigate", url=f"{base}/{r}")
        t0 = time.monotonic()
        while not any(e["method"] == "Page.loadEventFired" for e in page.events):
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{r} did not load within {timeout:g} s")
            await asyncio.sleep(0.05)
        try:
            await page.eval("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            found[r] = await page.eval(JS_MEASURE)
        except RuntimeError as e:
            raise RuntimeError(f"{r}: {e}") from None
    ws.close()
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", type=Path, nargs="?", default=Path("_build/html"), help="the built site (default _build/html)")
    ap.add_argument("--width", type=int, default=1300, help="browser window width in CSS pixels (default 1300)")
    ap.add_argument("--browser", help="the Chromium to use (default: found on PATH)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a page (default 60)")
    ap.add_argument("--skip-without-browser", action="store_true",
                    help="exit 0, saying so, when no Chromium is installed")
    args = ap.parse_args(argv)
    if not args.site.is_dir():
        print(f"check_overflow: {args.site} is not a folder (build the book first)", file=sys.stderr)
        return 2
    if args.width < 200:
        print(f"check_overflow: --width: expected at least 200 pixels, got {args.width}", file=sys.stderr)
        return 2
    if args.skip_without_browser and not (args.browser or find_chromium()):
        print("check_overflow: skipped, no Chromium installed (apt-get install -y chromium)")
        return 0
    browser = browser_or_none("check_overflow", args.browser)
    if not browser:
        return 2
    rel = [p.relative_to(args.site).as_posix() for p in pages(args.site)]
    server, http_port = serve(args.site)
    try:
        with chromium(browser, args.timeout) as port:
            found = asyncio.run(_measure(port, f"http://127.0.0.1:{http_port}", rel, args.width, args.timeout))
    except RuntimeError as e:
        print(f"check_overflow: {e}", file=sys.stderr)
        return 2
    finally:
        server.shutdown()
    bad = 0
    for r, items in found.items():
        for o in items:
            bad += 1
            print(f"{r}: output {o['i']} scrolls sideways at {args.width} px: content {o['scroll']} px wide in "
                  f"{o['client']} px ({o['text']})")
    if bad:
        print(f"check_overflow: {bad} output(s) wider than their page at {args.width} px, on "
              f"{sum(1 for v in found.values() if v)} of {len(found)} pages")
        return 1
    print(f"check_overflow: no output scrolls sideways at {args.width} px ({len(found)} pages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
