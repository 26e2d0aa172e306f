"""Read the built book as a reader would, and list what is wrong on each page.

``aerialseg book check [--html _build/html] [--screenshots DIR] [--only PAGE ...]`` (or
:func:`check_book`) looks at every content page of a built book:

* **content** (from the HTML, no browser needed): no output box shows "epoch" (a training
  log), an absolute path of a machine (``/work/``, ``/root/``, ``/home/``, ``/tmp/``),
  ``.venv`` or a warning; every image is inside a figure with a caption and has alt text
  that describes it (not a file name); no table cell shows "..." or "…" (elided rows or
  cut text);
* **layout** (headless Chromium at 1400 px, the content column about 780 px): no element
  sticks out of the content column unless it sits in a horizontally scrolling container
  made for it (``.aerialseg-scroll`` of :mod:`aerialseg.tables`, Markdown tables, code
  cells, display math); no output box cuts its content (a wide pandas table in an output
  scrolls with no visible cue: it reads as cut); no table cell's text runs over its
  neighbour; no image is shown at less than 1/2.5 of its size (its text would be
  illegible).

The layout is measured by a script injected into a copy of each page; Chromium runs it and
``--dump-dom`` returns its result (Debian's ``chromium`` package, offline). Screenshots of
the introduction and chapters 03 and 10 at 1400 px are kept when asked for.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

WINDOW_WIDTH = 1400
"""Browser window width of the check and of the screenshots (px)."""
SCREENSHOT_PAGES = ("book/intro.html", "book/chapters/03_fcn_mfb.html",
                    "book/chapters/10_comparison.html")
"""Pages whose screenshots are kept (CI keeps them as artefacts)."""
MAX_DOWNSCALE = 2.5
"""An image shown at less than 1/this of its natural width is flagged (illegible text)."""
SKIP_PAGES = ("genindex.html", "search.html")

OUTPUT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a training log ('epoch')", re.compile(r"\bepoch\b", re.IGNORECASE)),
    ("a machine path", re.compile(r"(?<![\w.~])/(?:work|root|home|tmp)/")),
    ("'.venv'", re.compile(r"\.venv\b")),
    ("a warning", re.compile(r"Warning|\bWARNING\b")),
)
"""What no output box may show: (what it is, pattern)."""
_PATH_ALT = re.compile(r"(^|/)[^ ]*\.(png|jpe?g|gif|svg|webp)$|^\.{0,2}/|_images/", re.I)
_ELLIPSIS = re.compile(r"\.\.\.|…")
_REDIRECT = re.compile(r'http-equiv="refresh"', re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    """One thing a reader would see wrong on one page."""

    page: str
    kind: str
    """``output``, ``image``, ``table``, ``overflow``, ``clipped``, ``spilled`` or
    ``downscaled``."""
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: [{self.kind}] {self.detail}"


def content_pages(html: str | Path) -> list[Path]:
    """The built pages a reader reads (no index, search or theme files)."""
    html = Path(html)
    return sorted(p for p in html.rglob("*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts
                  and p.name not in SKIP_PAGES and not p.name.startswith("__aerialseg")
                  and not _REDIRECT.search(p.read_text(errors="replace")[:2000]))


def _short(text: str, n: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _around(text: str, m: re.Match[str], n: int = 40) -> str:
    return _short(text[max(0, m.start() - n): m.end() + n])


def content_problems(page_html: str, page: str = "") -> list[Problem]:
    """The content checks of one page's HTML (see the module docstring)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page_html, "html.parser")
    article = soup.select_one("article.bd-article") or soup.select_one("main") or soup
    found: list[Problem] = []
    for box in article.select("div.cell_output"):
        text = box.get_text(" ")
        for what, pattern in OUTPUT_PATTERNS:
            m = pattern.search(text)
            if m:
                found.append(Problem(page, "output",
                                     f"an output shows {what}: {_around(text, m)!r}"))
    for img in article.find_all("img"):
        src = img.get("src", "")
        alt = (img.get("alt") or "").strip()
        fig = img.find_parent("figure")
        caption = fig.find("figcaption") if fig is not None else None
        if fig is None or caption is None or not caption.get_text(strip=True):
            found.append(Problem(page, "image", f"image {Path(src).name[:24]} has no "
                                 "numbered caption (show it with aerialseg.plots.show)"))
        if not alt or _PATH_ALT.search(alt):
            found.append(Problem(page, "image", f"image {Path(src).name[:24]} has no alt text "
                                 f"that describes it (alt={alt[:40]!r})"))
    for cell in article.find_all(["td", "th"]):
        text = cell.get_text(" ", strip=True)
        if _ELLIPSIS.search(text):
            found.append(Problem(page, "table", f"a table cell is cut or elided: {_short(text)!r}"))
    return found


_LAYOUT_JS = r"""
<script>
(function () {
  function describe(el) {
    var s = el.tagName.toLowerCase();
    if (el.id) s += "#" + el.id;
    if (el.classList.length) s += "." + Array.prototype.slice.call(el.classList, 0, 3).join(".");
    var t = (el.textContent || "").trim().replace(/\s+/g, " ").slice(0, 60);
    return s + (t ? ' "' + t + '"' : "");
  }
  function scrolls(el) {
    var o = getComputedStyle(el).overflowX;
    return o === "auto" || o === "scroll";
  }
  var MATH = "mjx-container, .MathJax, .math";
  // scroll containers made for wide content: the book's tables, Markdown tables, code
  // (cell inputs and code blocks in the text; not printed outputs)
  function madeToScroll(el) {
    return el.closest(".aerialseg-scroll, .pst-scrollable-table-container, div.cell_input") ||
      (el.closest("div.highlight") && !el.closest("div.cell_output"));
  }
  var done = false;
  function measure() {
    if (done) return;
    done = true;
    var art = document.querySelector("article.bd-article") || document.querySelector("main")
      || document.body;
    var col = art.getBoundingClientRect();
    var right = col.right + 2;
    var res = {column: [Math.round(col.left), Math.round(col.right)], overflow: [],
               clipped: [], downscaled: [], spilled: [],
               height: document.documentElement.scrollHeight};
    var out = new Set();
    var all = art.querySelectorAll("*");
    for (var i = 0; i < all.length; i++) {
      var el = all[i];
      var r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      if (r.right > right) {
        var p = el.parentElement, inside = false;
        while (p && p !== art) {
          if (scrolls(p) && p.getBoundingClientRect().right <= right) { inside = true; break; }
          p = p.parentElement;
        }
        if (!inside) {
          out.add(el);
          if (!out.has(el.parentElement)) {
            res.overflow.push(describe(el) + " (right edge " + Math.round(r.right) +
                              " px, column ends at " + Math.round(col.right) + " px)");
          }
        }
      }
      if (el.closest(MATH)) continue;  // MathJax sizes its own boxes
      var o = getComputedStyle(el).overflowX;
      if (o !== "visible" && el.scrollWidth > el.clientWidth + 2) {
        if (!(scrolls(el) && madeToScroll(el))) {
          res.clipped.push(describe(el) + " (" + el.scrollWidth + " px of content in " +
                           el.clientWidth + " px)");
        }
      }
    }
    // a table cell whose text spills over its neighbour (nowrap text in a narrow cell)
    var cells = art.querySelectorAll("td, th");
    for (var k = 0; k < cells.length; k++) {
      var c = cells[k];
      if (c.closest(MATH)) continue;
      if (c.scrollWidth > c.clientWidth + 2 &&
          getComputedStyle(c).overflowX === "visible") {
        res.spilled.push(describe(c) + " (" + c.scrollWidth + " px of text in a " +
                         c.clientWidth + " px cell)");
      }
    }
    var imgs = art.querySelectorAll("img");
    for (var j = 0; j < imgs.length; j++) {
      var w = imgs[j].getBoundingClientRect().width;
      if (imgs[j].naturalWidth && w && imgs[j].naturalWidth / w > %(max_downscale)s) {
        res.downscaled.push((imgs[j].getAttribute("src") || "").split("/").pop().slice(0, 24) +
          " (" + imgs[j].naturalWidth + " px shown at " + Math.round(w) + " px)");
      }
    }
    var pre = document.createElement("pre");
    pre.id = "aerialseg-layout";
    pre.textContent = JSON.stringify(res);
    document.body.appendChild(pre);
  }
  window.addEventListener("load", function () { setTimeout(measure, 400); });
  setTimeout(measure, 6000);  // a page whose load event never comes is measured anyway
})();
</script>
"""


def find_chromium() -> str | None:
    """The Chromium executable (Debian ``chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or \
        shutil.which("google-chrome")


def _flags(profile: Path, height: int = 1000) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
            f"--user-data-dir={profile}", "--virtual-time-budget=8000",
            f"--window-size={WINDOW_WIDTH},{height}"]


def measure_layout(page: Path, chromium: str, tmp: Path) -> dict:
    """Run the layout script on a copy of ``page``; its result (see the module docstring)."""
    copy = page.with_name(f"__aerialseg_check__{page.name}")
    html = page.read_text(errors="replace")
    script = _LAYOUT_JS.replace("%(max_downscale)s", str(MAX_DOWNSCALE))
    copy.write_text(html.replace("</body>", script + "</body>", 1) if "</body>" in html
                    else html + script)
    try:
        for budget in (8000, 30000):  # a loaded machine may need more (virtual) time
            flags = [f for f in _flags(tmp / "chrome") if not f.startswith("--virtual-time")]
            proc = subprocess.run([chromium, *flags, f"--virtual-time-budget={budget}",
                                   "--dump-dom", copy.as_uri()],
                                  capture_output=True, text=True, timeout=180)
            m = re.search(r'<pre id="aerialseg-layout">(.*?)</pre>', proc.stdout, re.S)
            if m:
                break
    finally:
        copy.unlink(missing_ok=True)
    if not m:
        raise RuntimeError(f"the layout script did not run on {page.name} "
                           f"(chromium exit {proc.returncode}): {proc.stderr[-500:]}")
    import html as html_lib

    return json.loads(html_lib.unescape(m.group(1)))


def screenshot(page: Path, out: Path, chromium: str, tmp: Path, height: int = 1600) -> Path:
    """A PNG of ``page`` at :data:`WINDOW_WIDTH` px, ``height`` px tall (whole page if taller)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([chromium, *_flags(tmp / "chrome", height), f"--screenshot={out}",
                    page.as_uri()], capture_output=True, timeout=180)
    if not out.exists():
        raise RuntimeError(f"chromium wrote no screenshot of {page.name}")
    return out


def layout_problems(page: Path, rel: str, chromium: str, tmp: Path
                    ) -> tuple[list[Problem], dict]:
    """The layout checks of one page, and the raw measurement."""
    res = measure_layout(page, chromium, tmp)
    found = [Problem(rel, "overflow", f"sticks out of the content column: {d}")
             for d in res["overflow"]]
    found += [Problem(rel, "clipped", f"cuts its content without a visible scroll cue: {d}")
              for d in res["clipped"]]
    found += [Problem(rel, "downscaled", f"image shown too small to read: {d}")
              for d in res["downscaled"]]
    found += [Problem(rel, "spilled", f"text runs over the next table cell: {d}")
              for d in res.get("spilled", [])]
    return found, res


def check_book(html: str | Path, *, pages: Iterable[str] | None = None,
               screenshots: str | Path | None = None, browser: bool = True,
               screenshot_pages: Sequence[str] = SCREENSHOT_PAGES) -> list[Problem]:
    """Every problem of every content page of the built book at ``html``.

    Args:
        html: the built book (``_build/html``).
        pages: only the pages whose path (relative to ``html``) or stem contains one of
            these (default every content page).
        screenshots: folder for full-page screenshots of ``screenshot_pages`` (1400 px).
        browser: run the layout checks in headless Chromium (RuntimeError if it is missing).
        screenshot_pages: which pages get screenshots.
    """
    html = Path(html)
    if not (html / "index.html").exists() and not any(html.glob("*.html")):
        raise FileNotFoundError(f"no built book in {html}: run `jupyter-book build .` first")
    chosen = content_pages(html)
    if pages:
        keys = list(pages)
        chosen = [p for p in chosen if any(k in str(p.relative_to(html)) for k in keys)]
    chromium = find_chromium() if browser or screenshots else None
    if (browser or screenshots) and chromium is None:
        raise RuntimeError("chromium not found: install it (apt-get install chromium "
                           "fonts-dejavu-core) or check without the browser")
    found: list[Problem] = []
    with tempfile.TemporaryDirectory(prefix="aerialseg_check_") as t:
        tmp = Path(t)
        for page in chosen:
            rel = str(page.relative_to(html))
            found += content_problems(page.read_text(errors="replace"), rel)
            height = 1600
            if browser:
                problems, res = layout_problems(page, rel, chromium, tmp)
                found += problems
                height = int(res.get("height", height))
            if screenshots and rel in screenshot_pages:
                name = rel.replace("/", "_").replace(".html", ".png")
                screenshot(page, Path(screenshots) / name, chromium, tmp,
                           height=max(800, min(height, 16000)))
    return found


def report(problems: Sequence[Problem]) -> str:
    """The problems grouped by page, most frequent kinds first."""
    if not problems:
        return "book check: no problem found"
    lines = [f"book check: {len(problems)} problem(s) on "
             f"{len({p.page for p in problems})} page(s)"]
    for page in sorted({p.page for p in problems}):
        mine = [p for p in problems if p.page == page]
        kinds = ", ".join(f"{k} {sum(p.kind == k for p in mine)}"
                          for k in sorted({p.kind for p in mine}))
        lines.append(f"\n{page} ({kinds})")
        lines += [f"  [{p.kind}] {p.detail}" for p in mine]
    return "\n".join(lines)


def main(*, html: str | Path | None = None, screenshots: str | Path | None = None,
         pages: Sequence[str] | None = None, browser: bool = True) -> int:
    """CLI entry (``aerialseg book check``): print the report; 0 if nothing is wrong."""
    from aerialseg.paths import repo_root

    problems = check_book(html or repo_root() / "_build" / "html", pages=pages,
                          screenshots=screenshots, browser=browser)
    print(report(problems))
    return 1 if problems else 0
